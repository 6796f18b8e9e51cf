"""Role read/patch/delete and the name rules' knobs, and cursor paging of the PKI collections, through HTTP."""

from __future__ import annotations

from cryptography import x509

from tests.integration.pki.conftest import make_hierarchy, ok


async def test_role_patch_and_delete_change_what_can_be_issued(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    role = await ok(await api.get("/v1/pki/roles/web-a", headers=admin))
    assert role["max_ttl"] == "720h" and role["allow_subdomains"] is True and role["store_private_keys"] is False
    await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com", "ttl": "48h"}))
    patched = await ok(await api.patch("/v1/pki/roles/web-a", headers=admin, json={
        "max_ttl": "24h", "allow_bare_domains": True, "server_flag": False, "organization": ["Acme"], "ou": ["Ops"]}))
    assert patched["max_ttl"] == "24h" and patched["ca_id"] == h["inter"]["id"]
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com", "ttl": "48h"})
    assert r.status_code == 422 and "max_ttl" in r.json()["error"]["message"], r.text
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "example.com"}))
    cert = x509.load_pem_x509_certificate(leaf["certificate"].encode())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]  # server_flag off
    assert cert.subject.rfc4514_string() == "CN=example.com,OU=Ops,O=Acme"
    r = await api.patch("/v1/pki/roles/web-a", headers=admin, json={"name": "renamed"})
    assert r.status_code == 422, r.text
    r = await api.patch("/v1/pki/roles/web-a", headers=admin, json={"key_type": "dsa"})
    assert r.status_code == 422, r.text
    assert (await ok(await api.get("/v1/pki/roles/web-a", headers=admin)))["key_type"] == "ec"  # unchanged
    r = await api.post("/v1/pki/roles", headers=admin, json={"name": "web-a", "ca_id": h["inter"]["id"],
                                                             "max_ttl": "1h"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
    assert (await api.delete("/v1/pki/roles/web-a", headers=admin)).status_code == 204
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "role_not_found", r.text
    # the certificates issued under the deleted role stay
    assert len((await ok(await api.get("/v1/pki/certificates", headers=admin)))["certificates"]) == 2


async def test_name_knobs(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec", role_extra={
        "allow_wildcard_certificates": True, "allow_localhost": False, "allowed_domains": ["*.svc.local"],
        "allow_subdomains": False})
    ok_names = ["api.svc.local", "*.svc.local"]
    for name in ok_names:
        await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": name}))
    for name in ("a.b.svc.local", "localhost", "svc.local", "a_b.svc.local", "a.svc.local.evil"):
        r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": name})
        assert r.status_code == 422 and r.json()["error"]["details"]["name"] == name, (name, r.text)
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "api.svc.local",
                                                                   "ip_sans": ["10.0.0.1"]})
    assert r.status_code == 200, r.text  # make_hierarchy's role allows IP SANs
    await ok(await api.patch("/v1/pki/roles/web-a", headers=admin, json={"allow_ip_sans": False}))
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "api.svc.local",
                                                                   "ip_sans": ["10.0.0.1"]})
    assert r.status_code == 422 and r.json()["error"]["details"]["name"] == "10.0.0.1", r.text
    # require_cn off: names from alt_names only; the first becomes the CN
    await ok(await api.post("/v1/pki/roles", headers=admin, json={
        "name": "nocn", "ca_id": h["inter"]["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
        "max_ttl": "1h", "require_cn": False, "key_type": "ec", "key_bits": 256}), 201)
    leaf = await ok(await api.post("/v1/pki/issue/nocn", headers=admin, json={"alt_names": ["x.example.com"]}))
    assert leaf["common_name"] == "x.example.com"
    long_name = "a" * 60 + ".example.com"  # a valid DNS name, too long for a CN: 422, not a 500 from the builder
    r = await api.post("/v1/pki/issue/nocn", headers=admin, json={"alt_names": [long_name]})
    assert r.status_code == 422 and r.json()["error"]["details"]["name"] == long_name, r.text
    leaf = await ok(await api.post("/v1/pki/issue/nocn", headers=admin, json={
        "common_name": "short.example.com", "alt_names": [long_name]}))
    assert leaf["alt_names"] == ["short.example.com", long_name]
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"alt_names": ["api.svc.local"]})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "common_name", r.text


async def test_collections_page_with_cursors(api, admin):
    await make_hierarchy(api, admin, key_type="ec")
    ids = [(await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={
        "common_name": f"p{i}.example.com"})))["id"] for i in range(3)]
    page = await ok(await api.get("/v1/pki/certificates?limit=2", headers=admin))
    assert page["has_more"] is True and [c["id"] for c in page["certificates"]] == ids[:2]
    page2 = await ok(await api.get(f"/v1/pki/certificates?limit=2&cursor={page['cursor']}", headers=admin))
    assert page2["has_more"] is False and page2["cursor"] is None and [c["id"] for c in page2["certificates"]] == ids[2:]
    cas = await ok(await api.get("/v1/pki/ca?limit=1", headers=admin))
    assert len(cas["cas"]) == 1 and cas["has_more"] is True
    more = await ok(await api.get(f"/v1/pki/ca?limit=1&cursor={cas['cursor']}", headers=admin))
    assert len(more["cas"]) == 1 and more["cas"][0]["id"] != cas["cas"][0]["id"]
    r = await api.get(f"/v1/pki/roles?cursor={cas['cursor']}", headers=admin)  # a CA cursor is not a role cursor
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", r.text
    soon = await ok(await api.get("/v1/pki/certificates?expiring_within=1h", headers=admin))
    assert soon["certificates"] == []
    later = await ok(await api.get("/v1/pki/certificates?expiring_within=800h", headers=admin))
    assert len(later["certificates"]) == 3
