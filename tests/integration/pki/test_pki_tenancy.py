"""Cross-tenant probes on every PKI endpoint answer exactly as "not found" and change nothing (issue 15).

Tenant A (tnt_acme_prod, its tenant admin) owns a CA hierarchy, a role, an issued certificate, a pending CSR and a
trust anchor. The prober is the partner admin switched into tenant B (``/v1/t/tnt_acme_dev``): for every PKI
route it addresses A's ids (and A's role name), and the answer must equal (status, code, body with the id masked)
the answer for an id that exists nowhere. B's own requests naming A's CA (as a parent, as a role's CA, as a list
filter) also look exactly like naming a missing CA. The tenant matrix (tests/integration/matrix) lists these routes
in ``EXTRA_ROUTES`` with a pointer here.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.pki.conftest import TENANT_B_PREFIX, make_hierarchy, ok
from tests.integration.pki.helpers import make_csr

# (method, template, body): every PKI route that addresses a resource by id or name
ID_ROUTES: list[tuple[str, str, Any]] = [
    ("get", "/pki/ca/{ca_id}", None),
    ("get", "/pki/ca/{ca_id}/certificate", None),
    ("post", "/pki/ca/{ca_id}/revoke", {"reason": "ca_compromise"}),
    ("post", "/pki/ca/{ca_id}/crl", None),
    ("get", "/pki/ca/{ca_id}/crl", None),
    ("get", "/pki/roles/{name}", None),
    ("patch", "/pki/roles/{name}", {"max_ttl": "1h"}),
    ("delete", "/pki/roles/{name}", None),
    ("post", "/pki/issue/{role}", {"common_name": "a.example.com"}),
    ("post", "/pki/sign/{role}", {"csr_pem": make_csr("a.example.com")}),
    ("get", "/pki/certificates/{cert_id}", None),
    ("get", "/pki/certificates/{cert_id}/pem", None),
    ("get", "/pki/certificates/{cert_id}/private-key", None),
    ("post", "/pki/certificates/{cert_id}/revoke", {"reason": "key_compromise"}),
    ("get", "/pki/csr/{csr_id}", None),
    ("post", "/pki/csr/{csr_id}/approve", None),
    ("post", "/pki/csr/{csr_id}/reject", None),
    ("get", "/pki/trust-anchors/{anchor_id}", None),
    ("delete", "/pki/trust-anchors/{anchor_id}", None),
]


CODES = {"ca_id": "ca_not_found", "name": "role_not_found", "role": "role_not_found",
         "cert_id": "certificate_not_found", "csr_id": "csr_not_found", "anchor_id": "trust_anchor_not_found"}


def _fake(real: str) -> str:
    prefix, _, body = real.rpartition("_")
    return f"{prefix}_{body[::-1]}" if prefix else real + "-missing"


def _norm(r: httpx.Response, *values: str) -> tuple[int, str]:
    text = r.text
    for v in values:
        text = text.replace(v, "<ID>")
    try:
        body = json.loads(text)
        body.get("error", {}).pop("request_id", None)
        text = json.dumps(body, sort_keys=True)
    except ValueError:
        pass
    return r.status_code, text


@pytest.fixture
async def world(api, admin) -> dict[str, str]:
    h = await make_hierarchy(api, admin, key_type="ec", role_extra={"store_private_keys": True})
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "a.example.com"}))
    csr = await ok(await api.post("/v1/pki/csr", headers=admin, json={"role": "web-a",
                                                                       "csr_pem": make_csr("b.example.com")}), 201)
    ta = await ok(await api.post("/v1/pki/trust-anchors", headers=admin, json={
        "name": "anchor", "certificate_pem": leaf["ca_chain"][-1]}), 201)
    return {"ca_id": h["inter"]["id"], "root_id": h["root"]["id"], "name": "web-a", "role": "web-a",
            "cert_id": leaf["id"], "csr_id": csr["id"], "anchor_id": ta["id"]}


async def _snapshot(api: httpx.AsyncClient, admin: dict[str, str], w: dict[str, str]) -> list[Any]:
    out = []
    for url in (f"/v1/pki/ca/{w['ca_id']}", f"/v1/pki/roles/{w['name']}", f"/v1/pki/certificates/{w['cert_id']}",
                f"/v1/pki/csr/{w['csr_id']}", f"/v1/pki/trust-anchors/{w['anchor_id']}"):
        body = await ok(await api.get(url, headers=admin))
        body.pop("crl_next_update", None)
        out.append(body)
    return out


async def test_every_pki_id_route_from_another_tenant_is_a_missing_resource(api, admin, partner, world):
    before = await _snapshot(api, admin, world)
    for method, template, body in ID_ROUTES:
        key = template.split("{")[1].split("}")[0]
        real, fake = world[key], _fake(world[key])
        kw: dict[str, Any] = {"headers": partner}
        if body is not None:
            kw["json"] = body
        url = TENANT_B_PREFIX + template
        r_real = await api.request(method.upper(), url.replace("{" + key + "}", real), **kw)
        r_fake = await api.request(method.upper(), url.replace("{" + key + "}", fake), **kw)
        assert r_real.status_code == 404, (method, template, r_real.text)
        assert r_real.json()["error"]["code"] == CODES[key], (method, template, r_real.text)
        assert _norm(r_real, real) == _norm(r_fake, fake), (method, template, r_real.text, r_fake.text)
        # and A itself reaches it (positive control for reads)
        if method == "get":
            own = await api.get("/v1" + template.replace("{" + key + "}", real), headers=admin)
            assert own.status_code == 200, (template, own.text)
    assert await _snapshot(api, admin, world) == before  # nothing changed


async def test_naming_another_tenants_ca_looks_like_a_missing_ca(api, admin, partner, world):
    base = TENANT_B_PREFIX + "/pki"
    for ca_id in (world["root_id"], world["ca_id"]):
        fake = _fake(ca_id)
        for_parent = [await api.post(f"{base}/ca", headers=partner, json={
            "name": "steal", "common_name": "Steal", "ca_type": "intermediate", "parent_ca_id": x, "key_type": "ec"})
            for x in (ca_id, fake)]
        assert for_parent[0].status_code == 404 and for_parent[0].json()["error"]["code"] == "ca_not_found"
        assert _norm(for_parent[0], ca_id) == _norm(for_parent[1], fake)
        for_role = [await api.post(f"{base}/roles", headers=partner, json={
            "name": "steal", "ca_id": x, "max_ttl": "24h", "allow_any_name": True}) for x in (ca_id, fake)]
        assert for_role[0].status_code == 404 and _norm(for_role[0], ca_id) == _norm(for_role[1], fake)
        listed = await ok(await api.get(f"{base}/certificates?ca_id={ca_id}&include_revoked=true", headers=partner))
        assert listed["certificates"] == []
    # B's collections hold nothing of A's
    for url, key in (("/ca", "cas"), ("/roles", "roles"), ("/certificates?include_revoked=true", "certificates"),
                     ("/csr", "csrs"), ("/trust-anchors", "trust_anchors")):
        body = await ok(await api.get(base + url, headers=partner))
        assert body[key] == [], (url, body)
        assert not any(v in json.dumps(body) for v in world.values())
    # and B's own hierarchy works side by side (the prober is a working PKI admin, not merely refused)
    mine = await make_hierarchy(api, partner, prefix=TENANT_B_PREFIX, key_type="ec", tag="b")
    assert mine["role"]["ca_id"] != world["ca_id"]
    a_cas = await ok(await api.get("/v1/pki/ca", headers=admin))
    assert {c["id"] for c in a_cas["cas"]} == {world["root_id"], world["ca_id"]}
