"""/v1/identity read endpoints, resolve, and the role rules (through the HTTP API, real tokens)."""

from __future__ import annotations

from tests.helpers import ADMIN, CI, OTHER_TENANT, PARTNER_ADMIN, TENANT, bearer, client_token, user_token


async def test_reads_resolve_roles_and_scopes(identity_stack, emu):
    async with identity_stack(super_admin_groups="grp_platform_admins") as stack:
        admin = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(admin, tenant_id=TENANT))["status"] == "succeeded"

        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=admin,
                                params={"q": "ali", "page_size": 1})
        assert r.json()["total"] == 1 and r.json()["users"][0]["email"] == "alice@acme.example"
        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=admin,
                                params={"page": 2, "page_size": 2})
        assert r.json()["total"] == 5 and len(r.json()["users"]) == 2 and r.json()["page"] == 2
        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=admin, params={"status": "SUSPENDED"})
        assert [u["id"] for u in r.json()["users"]] == ["usr_dave"]
        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/groups", headers=admin)
        groups = {g["name"]: g for g in r.json()["groups"]}
        assert groups["sre"]["member_count"] == 3 and r.json()["total"] == 4

        r = await stack.api.get("/v1/identity/resolve/user/user:bob@acme.example", headers=admin)
        assert r.status_code == 200
        kinds = {m["name"]: m["membership_type"] for m in r.json()["memberships"]}
        assert kinds == {"developers": "DIRECT", "oncall": "DIRECT", "sre": "NESTED"}
        r = await stack.api.get("/v1/identity/resolve/group/oncall", headers=admin)
        assert r.json()["parent_groups"] == ["grp_sre"]
        r = await stack.api.get("/v1/identity/resolve/user/nobody@acme.example", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "identity_not_found"
        r = await stack.api.get("/v1/identity/groups/grp_nope/members", headers=admin)
        assert r.status_code == 404

        # scopes: a CI token has no identity:read; a tenant admin cannot read another tenant
        ci = bearer(await client_token(emu.url, CI))
        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=ci)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
        r = await stack.api.get(f"/v1/identity/tenants/{OTHER_TENANT}/users", headers=admin)
        assert r.status_code == 403
        r = await stack.api.post("/v1/identity/sync", headers=ci)
        assert r.status_code == 403

        r = await stack.api.get("/v1/identity/roles", headers=ci)
        assert [x["name"] for x in r.json()["roles"]] == ["super_admin", "partner_admin", "tenant_admin"]

        # role rules: tenant_admin may not change roles; partner_admin may grant tenant_admin, not super_admin
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", headers=admin, json={"roles": ["tenant_admin"]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        partner = await stack.token(PARTNER_ADMIN)
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", headers=partner, json={"roles": ["tenant_admin"]})
        assert r.status_code == 200 and r.json()["roles"] == ["tenant_admin"]

        async def roles_of(user_id: str) -> list[str]:  # read the change back
            got = await stack.api.get(f"/v1/identity/users/{user_id}/roles", headers=partner)
            assert got.status_code == 200, got.text
            return got.json()["roles"]  # type: ignore[no-any-return]

        assert await roles_of("usr_bob") == ["tenant_admin"]
        carol_before = await roles_of("usr_carol")
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", headers=partner, json={"roles": ["super_admin"]})
        assert r.status_code == 403
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", headers=partner, json={"roles": ["wizard"]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_role"
        r = await stack.api.put("/v1/identity/users/usr_carol/roles", headers=partner, json={"roles": []})
        assert r.status_code == 403  # carol is a (group-elected) super_admin
        assert await roles_of("usr_bob") == ["tenant_admin"]  # the refused changes changed nothing
        assert await roles_of("usr_carol") == carol_before

        # carol is super_admin via the cache: she may grant super_admin, but not elevate herself further
        carol = bearer(await user_token(emu.url, "carol@acme.example", scope="identity:read identity:admin"))
        who = (await stack.api.get("/v1/auth/whoami", headers=carol)).json()
        assert "super_admin" in who["roles"] and "group:platform-admins" in who["groups"]
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", headers=carol, json={"roles": ["super_admin"]})
        assert r.status_code == 200
        assert await roles_of("usr_bob") == ["super_admin"]
        alice = bearer(await user_token(emu.url, "alice@acme.example", scope="identity:read"))
        r = await stack.api.put("/v1/identity/users/usr_alice/roles", headers=alice,
                                json={"roles": ["partner_admin"]})
        assert r.status_code == 403  # tenant_admin: neither role changes nor self-elevation
        assert "partner_admin" not in await roles_of("usr_alice")

        r = await stack.api.get("/v1/identity/sync/sync_doesnotexist", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "sync_not_found"
