"""Revocation and CRLs through HTTP (issue 15 item 5): a revoked leaf is in the fetched CRL (no token), which
verifies against its CA with openssl; revoking a CA revokes everything under it and lists it in its parent's CRL."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.pki.conftest import make_hierarchy, ok, openssl, write

pytestmark = pytest.mark.skipif(openssl("version").returncode != 0, reason="openssl CLI needed")


async def test_revoked_leaf_is_in_the_public_crl_which_verifies_against_the_ca(api, admin, tmp_path: Path):
    h = await make_hierarchy(api, admin, key_type="ec")
    inter = h["inter"]
    keep = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "keep.example.com"}))
    gone = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "gone.example.com"}))
    before = await api.get(f"/v1/pki/ca/{inter['id']}/crl")  # no token at all
    assert before.status_code == 200 and before.headers["content-type"] == "application/pkix-crl"
    assert len(x509.load_der_x509_crl(before.content)) == 0
    r = await api.post(f"/v1/pki/certificates/{gone['id']}/revoke", headers=admin, json={"reason": "key_compromise"})
    body = await ok(r)
    assert body["revoked"] is True and body["revocation_reason"] == "key_compromise"
    pem = await api.get(f"/v1/pki/ca/{inter['id']}/crl", headers={"Accept": "application/x-pem-file"})
    assert pem.status_code == 200 and pem.text.startswith("-----BEGIN X509 CRL-----"), pem.text
    crl = x509.load_pem_x509_crl(pem.content)
    ica = x509.load_pem_x509_certificate(inter_pem := gone["issuing_ca"].encode())
    assert crl.is_signature_valid(ica.public_key())  # type: ignore[arg-type]
    gone_serial = x509.load_pem_x509_certificate(gone["certificate"].encode()).serial_number
    keep_serial = x509.load_pem_x509_certificate(keep["certificate"].encode()).serial_number
    entry = crl.get_revoked_certificate_by_serial_number(gone_serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(keep_serial) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > \
        x509.load_der_x509_crl(before.content).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert crl.next_update_utc is not None and crl.next_update_utc > crl.last_update_utc
    # openssl agrees: the CRL verifies against the intermediate, and verify with CRL checking rejects the leaf
    cf, icf = write(tmp_path, "crl.pem", pem.content), write(tmp_path, "inter.pem", inter_pem)
    res = openssl("crl", "-in", cf, "-CAfile", icf, "-noout")
    assert res.returncode == 0 and b"verify OK" in (res.stdout + res.stderr), res.stdout + res.stderr
    root_pem = (await ok(await api.get(f"/v1/pki/ca/{h['root']['id']}/certificate", headers=admin)))["certificate_pem"]
    rf = write(tmp_path, "root.pem", root_pem)
    root_crl = await api.get(f"/v1/pki/ca/{h['root']['id']}/crl", headers={"Accept": "application/x-pem-file"})
    crls = write(tmp_path, "crls.pem", pem.text + root_crl.text)
    for leaf, want in ((gone, False), (keep, True)):
        lf = write(tmp_path, "leaf.pem", leaf["certificate"])
        res = openssl("verify", "-crl_check_all", "-CRLfile", crls, "-CAfile", rf, "-untrusted", icf, lf)
        assert (res.returncode == 0) is want, res.stdout + res.stderr
        if not want:
            assert b"revoked" in res.stdout + res.stderr
    # listing: revoked ones only with include_revoked; revoking again is idempotent
    listed = await ok(await api.get(f"/v1/pki/certificates?ca_id={inter['id']}", headers=admin))
    assert [c["id"] for c in listed["certificates"]] == [keep["id"]]
    listed = await ok(await api.get(f"/v1/pki/certificates?ca_id={inter['id']}&include_revoked=true", headers=admin))
    assert {c["id"] for c in listed["certificates"]} == {keep["id"], gone["id"]}
    again = await ok(await api.post(f"/v1/pki/certificates/{gone['id']}/revoke", headers=admin,
                                    json={"reason": "superseded"}))
    assert again["revocation_reason"] == "key_compromise"
    state = api._transport.app.state.sv  # type: ignore[attr-defined]
    async with state.db.raw() as conn:
        rows = await conn.fetch("SELECT data FROM events WHERE event_type = 'certificate.revoked'")
    import orjson
    assert [orjson.loads(r["data"])["certificate_id"] for r in rows] == [gone["id"]]
    assert orjson.loads(rows[0]["data"])["reason"] == "key_compromise"
    # forced rebuild returns the PEM and next update
    rebuilt = await ok(await api.post(f"/v1/pki/ca/{inter['id']}/crl", headers=admin))
    assert rebuilt["crl_pem"].startswith("-----BEGIN X509 CRL-----") and rebuilt["next_update"]


async def test_revoking_a_ca_revokes_everything_under_it(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "x.example.com"}))
    r = await api.post(f"/v1/pki/ca/{h['inter']['id']}/revoke", headers=admin, json={"reason": "ca_compromise"})
    ca = await ok(r)
    assert ca["is_active"] is False and ca["revocation_reason"] == "ca_compromise"
    got = await ok(await api.get(f"/v1/pki/certificates/{leaf['id']}", headers=admin))
    assert got["revoked"] is True
    root_crl = x509.load_der_x509_crl((await api.get(f"/v1/pki/ca/{h['root']['id']}/crl")).content)
    inter_serial = x509.load_pem_x509_certificate(leaf["issuing_ca"].encode()).serial_number
    assert root_crl.get_revoked_certificate_by_serial_number(inter_serial) is not None
    # the revoked CA issues nothing more, and cannot parent a new intermediate
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "y.example.com"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    r = await api.post("/v1/pki/ca", headers=admin, json={
        "name": "child", "common_name": "Child", "ca_type": "intermediate", "parent_ca_id": h["inter"]["id"]})
    assert r.status_code == 422 and "revoked" in r.json()["error"]["message"], r.text


async def test_crl_of_an_unknown_ca_or_through_another_tenants_prefix_is_ca_not_found(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    cid = h["root"]["id"]
    assert (await api.get(f"/v1/t/tnt_acme_prod/pki/ca/{cid}/crl")).status_code == 200
    fake = cid[:-4] + ("AAAA" if not cid.endswith("AAAA") else "BBBB")
    r_fake = await api.get(f"/v1/pki/ca/{fake}/crl")
    r_other = await api.get(f"/v1/t/tnt_acme_dev/pki/ca/{cid}/crl")
    assert r_fake.status_code == r_other.status_code == 404
    assert r_other.json()["error"]["code"] == "ca_not_found"
    assert r_other.json()["error"]["message"].replace(cid, "X") == r_fake.json()["error"]["message"].replace(fake, "X")


async def test_no_certificate_outlives_a_concurrent_ca_revocation(api, admin):
    """Issuances racing a CA revocation: each either fails (the CA is revoked) or is revoked with the CA, and
    the concurrent revocations and issuances never deadlock (every request gets a clean answer)."""
    import asyncio

    h = await make_hierarchy(api, admin, key_type="ec")
    first = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "f.example.com"}))

    async def issue(i: int) -> int:
        r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": f"c{i}.example.com"})
        assert r.status_code in (200, 422), r.text
        return r.status_code

    async def revoke_ca() -> int:
        await asyncio.sleep(0)
        r = await api.post(f"/v1/pki/ca/{h['inter']['id']}/revoke", headers=admin, json={"reason": "ca_compromise"})
        assert r.status_code == 200, r.text
        return r.status_code

    async def revoke_leaf() -> int:
        r = await api.post(f"/v1/pki/certificates/{first['id']}/revoke", headers=admin, json={"reason": "superseded"})
        assert r.status_code == 200, r.text
        return r.status_code

    results = await asyncio.gather(*(issue(i) for i in range(12)), revoke_ca(), revoke_leaf(),
                                   *(issue(i) for i in range(12, 20)))
    assert results.count(200) >= 2
    listed = await ok(await api.get(f"/v1/pki/certificates?ca_id={h['inter']['id']}&include_revoked=true&limit=1000",
                                    headers=admin))
    assert listed["certificates"] and all(c["revoked"] for c in listed["certificates"]), listed
    crl = x509.load_der_x509_crl((await api.get(f"/v1/pki/ca/{h['inter']['id']}/crl")).content)
    for c in listed["certificates"]:
        serial = int(c["serial_number"].replace(":", ""), 16)
        assert crl.get_revoked_certificate_by_serial_number(serial) is not None, c["id"]
