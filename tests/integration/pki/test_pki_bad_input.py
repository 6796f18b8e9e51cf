"""Bad input to the PKI gets its documented error code and leaves nothing behind (issue 15 "Bad input")."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.pki.conftest import make_hierarchy, ok
from tests.integration.pki.helpers import ed_key, make_csr, rsa_key, tampered_csr


def _err(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, r.text
    assert r.headers["x-request-id"] == err["request_id"]
    return err  # type: ignore[no-any-return]


async def test_bad_input_is_refused_with_its_code_and_leaves_nothing_behind(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")  # role web-a: EC P-256, example.com (+subdomains)
    cas_before = (await ok(await api.get("/v1/pki/ca", headers=admin)))["cas"]
    sign = "/v1/pki/sign/web-a"
    # CSRs: malformed, bad signature, unsupported key type, wrong key type for the role
    err = _err(await api.post(sign, headers=admin, json={"csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nnope\n"}),
               422, "validation_error")
    assert err["details"]["fields"][0]["field"] == "csr_pem"
    err = _err(await api.post(sign, headers=admin, json={"csr_pem": tampered_csr("a.example.com")}), 422,
               "validation_error")
    assert "signature" in err["message"]
    err = _err(await api.post(sign, headers=admin, json={"csr_pem": make_csr("a.example.com", key=ed_key())}), 422,
               "validation_error")
    assert "unsupported key type" in err["message"]
    err = _err(await api.post(sign, headers=admin, json={"csr_pem": make_csr("a.example.com", key=rsa_key())}), 422,
               "validation_error")
    assert "requires EC" in err["message"]
    _err(await api.post(sign, headers=admin, json={}), 422, "validation_error")
    # a role accepting any key type still refuses weak RSA keys
    await ok(await api.post("/v1/pki/roles", headers=admin, json={
        "name": "anykey", "ca_id": h["inter"]["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
        "max_ttl": "24h", "key_type": "any"}), 201)
    err = _err(await api.post("/v1/pki/sign/anykey", headers=admin, json={
        "csr_pem": make_csr("a.example.com", key=rsa_key(1024))}), 422, "validation_error")
    assert "2048" in err["message"]
    # names outside the role: the offending name is in the message and the details
    for body, name in (({"common_name": "a.example.com", "alt_names": ["ok.example.com", "evil.attacker.net"]},
                        "evil.attacker.net"),
                       ({"common_name": "example.com"}, "example.com"),  # bare domain not allowed
                       ({"common_name": "*.example.com"}, "*.example.com"),  # wildcards not allowed
                       ({"common_name": "a.example.com.evil.net"}, "a.example.com.evil.net")):
        err = _err(await api.post("/v1/pki/issue/web-a", headers=admin, json=body), 422, "validation_error")
        assert name in err["message"] and err["details"]["name"] == name, err
    err = _err(await api.post(sign, headers=admin, json={"csr_pem": make_csr("a.example.com", ["x.evil.net"])}), 422,
               "validation_error")
    assert err["details"]["name"] == "x.evil.net"
    # TTLs: above max_ttl (422), unparsable (400 invalid_duration)
    err = _err(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com",
                                                                          "ttl": "721h"}), 422, "validation_error")
    assert "max_ttl" in err["message"]
    _err(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com",
                                                                    "ttl": "forever"}), 400, "invalid_duration")
    _err(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com", "x": 1}), 422,
         "validation_error")
    _err(await api.post("/v1/pki/issue/nope", headers=admin, json={"common_name": "a.example.com"}), 404,
         "role_not_found")
    # CAs: unsupported key type / size, missing parent, root with a parent
    bad_keys: list[dict[str, Any]] = [{"key_type": "dsa"}, {"key_type": "rsa", "key_size": 1024},
                                      {"key_type": "ec", "key_size": 521}]
    for bad in bad_keys:
        _err(await api.post("/v1/pki/ca", headers=admin, json={"name": "bad", "common_name": "Bad",
                                                               "ca_type": "root", **bad}), 422, "validation_error")
    _err(await api.post("/v1/pki/ca", headers=admin, json={
        "name": "orphan", "common_name": "Orphan", "ca_type": "intermediate",
        "parent_ca_id": "ca_01J00000000000000000000000"}), 404, "ca_not_found")
    _err(await api.post("/v1/pki/ca", headers=admin, json={"name": "orphan", "common_name": "O",
                                                           "ca_type": "intermediate"}), 422, "validation_error")
    _err(await api.post("/v1/pki/ca", headers=admin, json={"name": "x", "common_name": "X", "ca_type": "branch"}),
         422, "validation_error")
    # an intermediate with path length 0 cannot parent another CA
    err = _err(await api.post("/v1/pki/ca", headers=admin, json={
        "name": "sub", "common_name": "Sub", "ca_type": "intermediate", "parent_ca_id": h["inter"]["id"],
        "key_type": "ec"}), 422, "validation_error")
    assert "path length" in err["message"]
    # roles: a missing CA, an unsupported key type, a bad max_ttl
    _err(await api.post("/v1/pki/roles", headers=admin, json={"name": "r", "ca_id": "ca_01J00000000000000000000000",
                                                              "max_ttl": "24h"}), 404, "ca_not_found")
    _err(await api.post("/v1/pki/roles", headers=admin, json={"name": "r", "ca_id": h["inter"]["id"],
                                                              "max_ttl": "24h", "key_type": "dsa"}), 422,
         "validation_error")
    _err(await api.post("/v1/pki/roles", headers=admin, json={"name": "r", "ca_id": h["inter"]["id"],
                                                              "max_ttl": "soon"}), 400, "invalid_duration")
    _err(await api.get("/v1/pki/roles/r", headers=admin), 404, "role_not_found")
    _err(await api.get("/v1/pki/certificates/cert_01J00000000000000000000000", headers=admin), 404,
         "certificate_not_found")
    _err(await api.post("/v1/pki/certificates/cert_01J00000000000000000000000/revoke", headers=admin), 404,
         "certificate_not_found")
    for reason in (["key_compromise"], {"x": 1}, 3, "stolen"):  # an unhashable reason once made a 500
        _err(await api.post(f"/v1/pki/ca/{h['root']['id']}/revoke", headers=admin, json={"reason": reason}), 422,
             "validation_error")
    assert (await ok(await api.get(f"/v1/pki/ca/{h['root']['id']}", headers=admin)))["is_active"] is True
    _err(await api.get("/v1/pki/certificates?expiring_within=later", headers=admin), 400, "invalid_duration")
    _err(await api.get("/v1/pki/certificates?cursor=%%%", headers=admin), 400, "invalid_cursor")
    # nothing was left behind
    assert (await ok(await api.get("/v1/pki/certificates?include_revoked=true", headers=admin)))["certificates"] == []
    cas_after = (await ok(await api.get("/v1/pki/ca", headers=admin)))["cas"]
    assert [c["id"] for c in cas_after] == [c["id"] for c in cas_before]
    assert all(c["certificates_issued"] == 0 for c in cas_after)
    assert [r["name"] for r in (await ok(await api.get("/v1/pki/roles", headers=admin)))["roles"]] == ["web-a",
                                                                                                      "anykey"]
    assert (await ok(await api.get("/v1/pki/csr", headers=admin)))["csrs"] == []


async def test_scopes_are_enforced(api, scaikey):
    from tests.helpers import bearer, user_token

    h = bearer(await user_token(scaikey, "alice@acme.example", scope="pki:issue"))
    r = await api.post("/v1/pki/ca", headers=h, json={"name": "x", "common_name": "X", "ca_type": "root"})
    _err(r, 403, "insufficient_scope")
    h2 = bearer(await user_token(scaikey, "alice@acme.example", scope="secrets:read"))
    _err(await api.post("/v1/pki/issue/web-a", headers=h2, json={"common_name": "a.example.com"}), 403,
         "insufficient_scope")
