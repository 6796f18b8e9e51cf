"""Identity sync through the HTTP API against the ScaiKey emulator, on a real Temporal server."""

from __future__ import annotations

from tests.helpers import ADMIN, PARTNER_ADMIN, TENANT

TENANT_SYNC = {"scaikey_sync_client_id": "scaivault-tenant-sync",
               "scaikey_sync_client_secret": "dev-tenant-sync-secret",
               "scaikey_sync_tenant_slug": "acme-prod"}


async def _users(stack, headers, **params):
    r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=headers,
                            params={"page_size": 100, **params})
    assert r.status_code == 200, r.text
    return {u["id"]: u for u in r.json()["users"]}


async def test_fast_path_with_admin_credentials_paginates(identity_stack, emu):
    await emu.page_size(2)
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        accepted = await stack.sync(h, tenant_id=TENANT)
        assert accepted["status"] == "pending" and accepted["sync_id"].startswith("sync_")
        assert accepted["started_at"].endswith("Z")
        done = await stack.wait_sync(accepted["sync_id"], h)
        assert done["status"] == "succeeded", done
        stats = done["stats"]
        assert stats["users_method"] == "effective_users"
        # app assignments: pat directly; developers, sre (+ nested oncall), platform-admins via groups
        assert stats["users_seen"] == 5 and stats["users_added"] == 5
        assert stats["groups_seen"] == 4
        users = await _users(stack, h)
        assert set(users) == {"usr_alice", "usr_bob", "usr_carol", "usr_dave", "usr_pat"}
        assert set(users["usr_bob"]["groups"]) == {"grp_developers", "grp_oncall", "grp_sre"}
        assert users["usr_dave"]["status"] == "SUSPENDED"
        assert users["usr_alice"]["mfa_enabled"] is True
    pages = [e for e in await emu.requests("*/effective-users") if "page=3" in str(e.get("query"))]
    assert pages, "effective users should have been read over several pages of 2"


async def test_member_walk_with_tenant_tier_credentials(identity_stack, emu):
    await emu.page_size(2)
    async with identity_stack(**TENANT_SYNC) as stack:
        h = await stack.token(ADMIN)
        done = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert done["status"] == "succeeded", done
        stats = done["stats"]
        assert stats["users_method"] == "member_walk"
        assert stats["users_seen"] == 4  # union of group members: pat is only assigned directly
        users = await _users(stack, h)
        assert set(users) == {"usr_alice", "usr_bob", "usr_carol", "usr_dave"}
        r = await stack.api.get("/v1/identity/groups/grp_sre/members", headers=h)
        assert r.status_code == 200, r.text
        kinds = {m["user_id"]: m["membership_type"] for m in r.json()["members"]}
        assert kinds == {"usr_alice": "DIRECT", "usr_bob": "NESTED", "usr_dave": "NESTED"}
        assert r.json()["total"] == 3
    # the fallback happened on the exact 403, and the tenant-scoped group paths were used
    assert await emu.requests("/api/v1/tenants/tnt_acme_prod/groups/*/members")
    assert not await emu.requests("/api/v1/admin/groups*")


async def test_removed_user_is_soft_deleted_and_revived(identity_stack, emu):
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        await emu.admin("DELETE", "/api/v1/admin/users/usr_bob")
        second = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert second["stats"]["users_soft_deleted"] == 1
        assert second["stats"]["memberships_soft_deleted"] == 3  # bob: developers, oncall (DIRECT), sre (NESTED)
        assert "usr_bob" not in await _users(stack, h)
        deleted = await _users(stack, h, status="DELETED")
        assert deleted["usr_bob"]["status"] == "DELETED"
        await emu.admin("POST", "/api/v1/admin/users/usr_bob/restore")
        third = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert third["stats"]["users_undeleted"] == 1 and third["stats"]["users_added"] == 0
        assert "usr_bob" in await _users(stack, h)
        r = await stack.api.get("/v1/identity/sync/history", headers=h)
        assert r.status_code == 200 and r.json()["total"] == 3


async def test_outage_fails_the_sync_and_leaves_the_cache(identity_stack, emu):
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        await emu.admin("DELETE", "/api/v1/admin/users/usr_carol")
        await emu.control("POST", "/faults", json={"path": "/api/v1/admin/groups*", "status": 503})
        failed = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert failed["status"] == "failed"
        assert "503" in failed["error"]
        assert "usr_carol" in await _users(stack, h)  # untouched
        await emu.control("DELETE", "/faults")
        # a listing that lies about its total is broken pagination, never "users are gone"
        await emu.page_size(2)
        await emu.control("POST", "/faults", json={"path": "*/effective-users", "lying_total": 2})
        broken = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert broken["status"] == "failed" and "pagination" in broken["error"]
        assert "usr_carol" in await _users(stack, h)
        # each sync run is a background action in the audit log, as system:identity-sync
        logs = (await stack.api.get("/v1/audit/logs?action=identity_sync", headers=h)).json()["logs"]
        assert {e["identity_id"] for e in logs} == {"system:identity-sync"}
        assert sorted(e["success"] for e in logs) == [False, False, True]
        assert all(e["resource_id"] == TENANT for e in logs)


async def test_super_admin_election_and_manual_grant_survives(identity_stack, emu):
    # a group *name* elects only inside the operator tenant (docs/identity.md "Super admins")
    async with identity_stack(super_admin_groups="platform-admins", operator_tenant_id=TENANT) as stack:
        h = await stack.token(ADMIN)
        first = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert first["stats"]["super_admins_group_promoted"] == 1
        assert first["stats"]["super_admin_count"] == 1
        users = await _users(stack, h)
        assert users["usr_carol"]["roles"] == ["super_admin"]
        assert users["usr_carol"]["admin_role_source"] == "group"

        from cli.identity import grant
        assert await grant(stack.settings, "alice@acme.example", "super_admin", TENANT) == 0

        # carol stays a user of the app (through developers) but leaves the elected group
        await emu.admin("POST", "/api/v1/admin/groups/grp_developers/members", json={"user_id": "usr_carol"})
        await emu.admin("DELETE", "/api/v1/admin/groups/grp_platform_admins/members/usr_carol")
        second = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert second["stats"]["super_admins_group_demoted"] == 1
        assert second["stats"]["super_admin_count"] == 1
        users = await _users(stack, h)
        assert users["usr_carol"]["roles"] == []
        assert users["usr_alice"]["roles"] == ["super_admin"]
        assert users["usr_alice"]["admin_role_source"] == "manual"
        r = await stack.api.get("/v1/identity/users/usr_alice/roles", headers=h)
        assert r.json()["roles"] == ["super_admin"]


async def test_no_super_admin_is_reported(identity_stack, emu):
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        done = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert done["stats"]["super_admin_count"] == 0
        assert any("no super admin" in w for w in done["stats"]["warnings"])


async def test_partner_admin_full_sync_mirrors_directory(identity_stack, emu):
    async with identity_stack() as stack:
        h = await stack.token(PARTNER_ADMIN)
        accepted = await stack.sync(h)
        assert accepted["partner_id"] == "prt_acme"
        done = await stack.wait_sync(accepted["sync_id"], h)
        assert done["status"] == "succeeded", done
        assert {t["tenant_id"] for t in done["tenants"]} == {"tnt_acme_prod", "tnt_acme_dev"}
        r = await stack.api.get("/v1/identity/tenants", headers=h)
        tenants = {t["id"]: t for t in r.json()["tenants"]}
        assert tenants["tnt_acme_dev"]["slug"] == "acme-dev" and r.json()["total"] == 2
        r = await stack.api.get("/v1/identity/partners", headers=h)
        assert r.json()["partners"][0]["name"] == "Acme Corp"
        # the entity keeps running and answers its status query
        from services.identity.cache import sync_workflow_id
        handle = stack.temporal.get_workflow_handle(sync_workflow_id(stack.settings, TENANT))
        from workflows.types.identity import SyncState
        state = await handle.query("status", result_type=SyncState)
        assert state.last_status == "succeeded" and state.tenant_id == TENANT
