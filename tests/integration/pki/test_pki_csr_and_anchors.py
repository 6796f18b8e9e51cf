"""CSR workflow (submit, approve, reject; the approver audited) and trust anchors, through HTTP (issue 15 item 4)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from tests.integration.pki.conftest import make_hierarchy, ok, openssl, write
from tests.integration.pki.helpers import make_csr


async def test_csr_is_approved_into_a_certificate_and_the_approver_is_audited(api, admin, tmp_path: Path):
    await make_hierarchy(api, admin, key_type="ec")
    csr = make_csr("svc.example.com", ["svc.example.com", "alt.example.com"])
    sub = await ok(await api.post("/v1/pki/csr", headers=admin, json={"role": "web-a", "csr_pem": csr,
                                                                       "ttl": "48h"}), 201)
    assert sub["status"] == "pending" and sub["alt_names"] == ["svc.example.com", "alt.example.com"]
    assert sub["requested_by"] == "sa:dev-admin"
    pending = await ok(await api.get("/v1/pki/csr?status=pending", headers=admin))
    assert [c["id"] for c in pending["csrs"]] == [sub["id"]]
    done = await ok(await api.post(f"/v1/pki/csr/{sub['id']}/approve", headers=admin, json={"reason": "ticket 42"}))
    assert done["status"] == "approved" and done["decided_by"] == "sa:dev-admin"
    cert = done["certificate"]
    assert done["certificate_id"] == cert["id"] and cert["source"] == "csr" and "private_key" not in cert
    parsed = x509.load_pem_x509_certificate(cert["certificate"].encode())
    req = x509.load_pem_x509_csr(csr.encode())
    assert parsed.public_key() == req.public_key()
    rf = write(tmp_path, "root.pem", cert["ca_chain"][-1])
    res = openssl("verify", "-CAfile", rf, "-untrusted", write(tmp_path, "i.pem", cert["ca_chain"][0]),
                  write(tmp_path, "l.pem", cert["certificate"]))
    assert res.returncode == 0, res.stdout + res.stderr
    # decided once: a second approve or a reject is a conflict
    r = await api.post(f"/v1/pki/csr/{sub['id']}/reject", headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
    logs = await ok(await api.get("/v1/audit/logs?action=pki_csr_approve", headers=admin))
    entry = next(e for e in logs["logs"] if e.get("resource_id") == sub["id"])
    assert entry["identity_id"] == "sa:dev-admin"
    assert (entry.get("extra_data") or entry.get("extra") or {}).get("approved_by") == "sa:dev-admin", entry
    signed = await ok(await api.get("/v1/audit/logs?action=pki_sign", headers=admin))
    assert any(e.get("resource_id") == cert["id"] for e in signed["logs"])


async def test_csr_reject_and_csr_checks_at_submission(api, admin):
    await make_hierarchy(api, admin, key_type="ec")
    sub = await ok(await api.post("/v1/pki/csr", headers=admin, json={
        "role": "web-a", "csr_pem": make_csr("a.example.com")}), 201)
    rej = await ok(await api.post(f"/v1/pki/csr/{sub['id']}/reject", headers=admin, json={"reason": "not ours"}))
    assert rej["status"] == "rejected" and rej["decision_reason"] == "not ours" and rej["certificate_id"] is None
    r = await api.post(f"/v1/pki/csr/{sub['id']}/approve", headers=admin)
    assert r.status_code == 409, r.text
    # names outside the role are refused at submission, with the name in the error
    r = await api.post("/v1/pki/csr", headers=admin, json={"role": "web-a", "csr_pem": make_csr("evil.attacker.net")})
    assert r.status_code == 422 and "evil.attacker.net" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["details"]["name"] == "evil.attacker.net"
    r = await api.post("/v1/pki/csr", headers=admin, json={"role": "nope", "csr_pem": make_csr("a.example.com")})
    assert r.status_code == 404 and r.json()["error"]["code"] == "role_not_found", r.text
    r = await api.get("/v1/pki/csr/csr_01J00000000000000000000000", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "csr_not_found", r.text
    assert [c["id"] for c in (await ok(await api.get("/v1/pki/csr", headers=admin)))["csrs"]] == [sub["id"]]


async def test_trust_anchors_crud(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "z.example.com"}))
    ext_root = h["root"]
    pem = (await ok(await api.get(f"/v1/pki/ca/{ext_root['id']}/certificate", headers=admin)))["certificate_pem"]
    ta = await ok(await api.post("/v1/pki/trust-anchors", headers=admin, json={"name": "partner-ca",
                                                                                 "certificate_pem": pem}), 201)
    assert ta["subject"] == "CN=Root a" and len(ta["fingerprint_sha256"]) == 64
    assert (await ok(await api.get(f"/v1/pki/trust-anchors/{ta['id']}", headers=admin)))["certificate_pem"] == pem
    listed = await ok(await api.get("/v1/pki/trust-anchors", headers=admin))
    assert [t["id"] for t in listed["trust_anchors"]] == [ta["id"]]
    r = await api.post("/v1/pki/trust-anchors", headers=admin, json={"name": "again", "certificate_pem": pem})
    assert r.status_code == 409, r.text
    r = await api.post("/v1/pki/trust-anchors", headers=admin, json={"name": "leaf", "certificate_pem":
                                                                     leaf["certificate"]})
    assert r.status_code == 422 and "not a CA" in r.json()["error"]["message"], r.text
    r = await api.post("/v1/pki/trust-anchors", headers=admin, json={"name": "junk", "certificate_pem": "junk"})
    assert r.status_code == 422, r.text
    assert (await api.delete(f"/v1/pki/trust-anchors/{ta['id']}", headers=admin)).status_code == 204
    r = await api.get(f"/v1/pki/trust-anchors/{ta['id']}", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "trust_anchor_not_found", r.text
