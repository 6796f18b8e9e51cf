"""Issue 21 item 1: POST /v1/policies/test evaluates exactly what a real request by the tested identity would:
groups from the identity cache (the request path's lookup), the same conditions for the supplied context, and
it says which groups it used. Each case compares the dry run with a real request by the same identity."""

from __future__ import annotations

from typing import Any

from tests.helpers import ADMIN, bearer, grant, mint, user_token

BOB = "user:bob@acme.example"


async def _dry(stack: Any, admin: dict[str, str], path: str, permission: str = "read",
               **body: Any) -> dict[str, Any]:
    r = await stack.api.post("/v1/policies/test", headers=admin,
                             json={"identity_id": BOB, "path": path, "permission": permission, **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_dry_run_agrees_with_real_requests(identity_stack, emu):
    async with identity_stack(live=True) as stack:
        admin = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(admin, tenant_id="tnt_acme_prod"))["status"] == "succeeded"
        await grant(stack.api, admin, ["sa:dev-admin"], pattern="**", name="admin-all")
        # bob reaches oncall/** only through his group:oncall membership (never bound to him directly)
        await grant(stack.api, admin, ["group:oncall"], pattern="oncall/**", permissions=("read",), name="oncall")
        r = await stack.api.post("/v1/policies", headers=admin, json={"name": "oncall-vpn", "rules": [
            {"path_pattern": "vpn/**", "permissions": ["read"], "conditions": {"ip_ranges": ["10.0.0.0/8"]}}]})
        assert r.status_code == 201, r.text
        r = await stack.api.post(f"/v1/policies/{r.json()['id']}/bindings", headers=admin,
                                 json={"identity_type": "group", "identity_id": "group:oncall"})
        assert r.status_code == 201, r.text
        for path in ("oncall/pager", "team/db", "vpn/psk"):
            r = await stack.api.put(f"/v1/secrets/{path}", json={"data": {"v": "x"}}, headers=admin)
            assert r.status_code in (200, 201), r.text

        bob = bearer(await user_token(emu.url, "bob@acme.example", scope="secrets:read"))
        # allow: through the cached group, and the dry run names the groups it used and where they came from
        dry = await _dry(stack, admin, "oncall/pager")
        real = await stack.api.get("/v1/secrets/oncall/pager", headers=bob)
        assert real.status_code == 200, real.text
        assert dry["allowed"] is True, dry
        # bob: developers and oncall directly, sre through oncall (the emulator's seed)
        assert sorted(dry["groups"]) == ["group:developers", "group:oncall", "group:sre"], dry
        assert sorted(dry["groups_source"]["identity_cache"]) == ["group:developers", "group:oncall", "group:sre"]
        assert dry["identity_cache"] == {"found": True, "status": "ACTIVE", "deleted": False}

        # deny, no rule: same answer, same code
        dry = await _dry(stack, admin, "team/db")
        real = await stack.api.get("/v1/secrets/team/db", headers=bob)
        assert real.status_code == 403 and dry["allowed"] is False
        assert real.json()["error"]["code"] == dry["code"] == "access_denied"
        assert real.json()["error"]["details"]["reason"] == dry["reason"] == "no_matching_rule"

        # deny, condition: the real request comes from 127.0.0.1; the dry run given that context agrees
        dry = await _dry(stack, admin, "vpn/psk", context={"source_ip": "127.0.0.1"})
        real = await stack.api.get("/v1/secrets/vpn/psk", headers=bob)
        assert real.status_code == 403 and dry["allowed"] is False
        assert real.json()["error"]["code"] == dry["code"] == "ip_not_allowed"
        assert real.json()["error"]["details"]["failed_condition"] == dry["failed_condition"]
        assert (await _dry(stack, admin, "vpn/psk", context={"source_ip": "10.1.2.3"}))["allowed"] is True

        # a service account has no cached groups: only its id (and any token groups the body supplies)
        r = await stack.api.post("/v1/policies/test", headers=admin,
                                 json={"identity_id": "sa:ci-deployer", "path": "oncall/pager", "permission": "read"})
        assert r.status_code == 200 and r.json()["allowed"] is False and r.json()["groups"] == []
        ci = bearer(await mint(emu.url, client_id="ci-deployer", scope="secrets:read"))
        assert (await stack.api.get("/v1/secrets/oncall/pager", headers=ci)).status_code == 403

        # a user ScaiKey suspended: the real request is refused before policy evaluation, and the dry run says so
        dave_dry = await stack.api.post("/v1/policies/test", headers=admin, json={
            "identity_id": "user:dave@acme.example", "path": "oncall/pager", "permission": "read"})
        assert dave_dry.status_code == 200, dave_dry.text
        dave = bearer(await user_token(emu.url, "dave@acme.example", scope="secrets:read"))
        real = await stack.api.get("/v1/secrets/oncall/pager", headers=dave)
        assert real.status_code == 403, real.text
        assert dave_dry.json()["allowed"] is False
        assert (dave_dry.json()["code"], dave_dry.json()["reason"]) == (
            real.json()["error"]["code"], real.json()["error"]["details"]["reason"]) == ("access_denied",
                                                                                            "user_suspended")
