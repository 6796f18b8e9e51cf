"""Issue 11, items 1-4 (privilege and identity), through the HTTP API against the ScaiKey emulator.

1. SUPER_ADMIN_GROUPS / BOOTSTRAP_SUPER_ADMIN never cross tenants by group name or email.
2. Personal access tokens resolve roles, groups and status live; offboarding ends them at once.
3. Introspection answering 4xx is loud (readiness, log) and fails closed unless told otherwise.
4. An empty JWKS cache refreshes through the single-flight, rate-limited path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN, OTHER_TENANT, PARTNER_ADMIN, TENANT, bearer, grant, mint, user_token
from tests.identity.conftest import WEBHOOK_SECRET


async def _fire(emu: Any, stack: Any, event_type: str, data: dict[str, Any]) -> int:
    """A signed ScaiKey webhook delivered by the emulator to the running API; returns the HTTP status."""
    out = await emu.control("POST", "/webhooks/fire", json={
        "url": stack.url + "/v1/identity/webhooks/scaikey", "secret": WEBHOOK_SECRET, "event_type": event_type,
        "tenant_id": TENANT, "data": {"tenant_id": TENANT, **data}})
    return int(out["results"][0]["attempts"][-1]["status_code"])


async def _roles(stack: Any, h: dict[str, str], user_id: str) -> list[str]:
    r = await stack.api.get(f"/v1/identity/users/{user_id}/roles", headers=h)
    assert r.status_code == 200, r.text
    return list(r.json()["roles"])


# --------------------------------------------------------------------------------------------- item 1
async def test_super_admin_names_and_emails_only_count_in_the_operator_tenant(identity_stack, emu):
    """carol is in a group *named* platform-admins in tnt_acme_prod; bob@acme.example is listed by email. Any
    tenant admin can create such a group or user, so outside the operator tenant neither confers super_admin;
    grants the old cross-tenant match made are taken back at the next reconcile. Ids match in any tenant."""
    by_name = {"super_admin_groups": "platform-admins", "bootstrap_super_admin": "user:bob@acme.example"}

    # 1) tnt_acme_prod is the operator tenant: name and email are trusted there
    async with identity_stack(operator_tenant_id=TENANT, **by_name) as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        assert await _roles(stack, h, "usr_carol") == ["super_admin"]
        assert await _roles(stack, h, "usr_bob") == ["super_admin"]

    # 2) the operator tenant is another one: the same name and email are just a tenant's own choices
    async with identity_stack(operator_tenant_id=OTHER_TENANT, **by_name) as stack:
        h = await stack.token(ADMIN)
        done = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert done["status"] == "succeeded"
        assert done["stats"]["super_admin_count"] == 0, done["stats"]
        assert await _roles(stack, h, "usr_carol") == []
        assert await _roles(stack, h, "usr_bob") == []
        bob = bearer(await user_token(emu.url, "bob@acme.example", scope="identity:read"))
        who = await stack.api.get("/v1/auth/whoami", headers=bob)
        assert who.status_code == 200, who.text
        assert "super_admin" not in who.json()["roles"]  # not at sign-in either
        carol = bearer(await user_token(emu.url, "carol@acme.example", scope="identity:read"))
        assert "super_admin" not in (await stack.api.get("/v1/auth/whoami", headers=carol)).json()["roles"]

    # 3) no operator tenant at all: names/emails match nobody, but ScaiKey ids match wherever they live
    async with identity_stack(super_admin_groups="grp_platform_admins", bootstrap_super_admin="user:usr_bob",
                              operator_tenant_id="") as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        assert await _roles(stack, h, "usr_carol") == ["super_admin"]
        assert await _roles(stack, h, "usr_bob") == ["super_admin"]
        # the operator CLI takes a user id too (unique everywhere, unlike an email)
        from cli.identity import grant as cli_grant
        assert await cli_grant(stack.settings, "usr_alice", "super_admin", None) == 0
        assert await _roles(stack, h, "usr_alice") == ["super_admin"]


# --------------------------------------------------------------------------------------------- item 2
async def test_pat_of_a_deleted_user_is_refused_at_once_and_revoked(identity_stack, emu):
    async with identity_stack(live=True) as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        bob_jwt = bearer(await user_token(emu.url, "bob@acme.example", scope="secrets:read identity:read"))
        r = await stack.api.post("/v1/auth/tokens", json={"name": "laptop", "scopes": ["secrets:read"]},
                                 headers=bob_jwt)
        assert r.status_code == 201, r.text
        pat_id, pat = r.json()["id"], bearer(r.json()["token"])
        assert (await stack.api.get("/v1/auth/whoami", headers=pat)).status_code == 200  # warm every cache
        assert (await stack.api.get("/v1/auth/whoami", headers=bob_jwt)).status_code == 200

        assert await _fire(emu, stack, "user.deleted", {"id": "usr_bob", "email": "bob@acme.example"}) == 200
        for h_ in (pat, bob_jwt):  # ScaiKey said so: the user's live JWT goes too, without waiting for a re-check
            r = await stack.api.get("/v1/auth/whoami", headers=h_)
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "token_revoked"
            assert r.json()["error"]["details"]["reason"] == "user_deleted"
        # and for good: the token row is revoked, by ScaiKey's event
        r = await stack.api.get(f"/v1/auth/tokens/{pat_id}", headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["revoked_at"] is not None


async def test_pat_of_a_user_the_sync_removed_is_refused(identity_stack, emu):
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        bob_jwt = bearer(await user_token(emu.url, "bob@acme.example", scope="secrets:read"))
        r = await stack.api.post("/v1/auth/tokens", json={"name": "laptop", "scopes": ["secrets:read"]},
                                 headers=bob_jwt)
        assert r.status_code == 201, r.text
        pat = bearer(r.json()["token"])
        assert (await stack.api.get("/v1/auth/whoami", headers=pat)).status_code == 200

        await emu.admin("DELETE", "/api/v1/admin/users/usr_bob")  # no webhook: only the sync learns of it
        done = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert done["stats"]["users_soft_deleted"] == 1, done["stats"]
        r = await stack.api.get("/v1/auth/whoami", headers=pat)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["details"]["reason"] == "user_deleted"


async def test_pat_roles_groups_and_status_are_resolved_live(identity_stack, emu):
    async with identity_stack(live=True) as stack:
        admin = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(admin, tenant_id=TENANT))["status"] == "succeeded"
        erin = bearer(await user_token(emu.url, "erin@acme.example", scope="identity:read"))
        assert (await stack.api.get("/v1/auth/whoami", headers=erin)).status_code == 200  # tnt_acme_dev known
        padmin = await stack.token(PARTNER_ADMIN)
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", json={"roles": ["partner_admin"]}, headers=padmin)
        assert r.status_code == 200, r.text

        # policies: the admin writes everything, the developers group reads team/**
        await grant(stack.api, admin, ["sa:dev-admin"], pattern="**", name="admin-all")
        await grant(stack.api, admin, ["group:developers"], pattern="team/**", permissions=("read",), name="devs")
        r = await stack.api.put("/v1/secrets/team/db", json={"data": {"password": "hunter2"}}, headers=admin)
        assert r.status_code in (200, 201), r.text

        bob_jwt = bearer(await user_token(emu.url, "bob@acme.example", scope="secrets:read identity:read"))
        r = await stack.api.post("/v1/auth/tokens", json={"name": "ci", "scopes": ["secrets:read", "identity:read"]},
                                 headers=bob_jwt)
        assert r.status_code == 201, r.text
        pat = bearer(r.json()["token"])
        who = (await stack.api.get("/v1/auth/whoami", headers=pat)).json()
        assert "partner_admin" in who["roles"] and "group:developers" in who["groups"], who
        assert (await stack.api.get(f"/v1/t/{OTHER_TENANT}/auth/whoami", headers=pat)).status_code == 200
        assert (await stack.api.get("/v1/secrets/team/db", headers=pat)).status_code == 200

        # demoted, and removed from developers (ScaiKey webhook)
        r = await stack.api.put("/v1/identity/users/usr_bob/roles", json={"roles": []}, headers=padmin)
        assert r.status_code == 200, r.text
        assert await _fire(emu, stack, "group.member_removed", {
            "group_id": "grp_developers", "user_id": "usr_bob", "member_type": "user"}) == 200

        r = await stack.api.get(f"/v1/t/{OTHER_TENANT}/auth/whoami", headers=pat)
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_access_denied", r.text
        who = (await stack.api.get("/v1/auth/whoami", headers=pat)).json()
        assert "partner_admin" not in who["roles"] and "group:developers" not in who["groups"], who
        assert "group:oncall" in who["groups"]  # the memberships bob still has stay live too
        r = await stack.api.get("/v1/secrets/team/db", headers=pat)
        assert r.status_code in (403, 404), r.text

        # suspension blocks the PAT too, and reactivation restores it
        assert await _fire(emu, stack, "user.suspended", {"id": "usr_bob"}) == 200
        r = await stack.api.get("/v1/auth/whoami", headers=pat)
        assert r.status_code == 403 and r.json()["error"]["details"]["reason"] == "user_suspended"
        assert await _fire(emu, stack, "user.activated", {"id": "usr_bob"}) == 200
        assert (await stack.api.get("/v1/auth/whoami", headers=pat)).status_code == 200


# --------------------------------------------------------------------------------------------- item 3
async def _revoked_token(scaikey: str) -> str:
    token = await mint(scaikey, client_id="ci-deployer")
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/_emulator/tokens/revoke", json={"token": token})
        assert r.status_code == 200
    return token


async def test_introspection_refused_fails_closed_and_readiness_says_so(emu, settings_factory, make_app_client,
                                                                        redis_clean):
    # ScaiKey answers 401 to introspection: ScaiVault's own client secret is wrong
    settings = settings_factory(scaikey_client_secret="not-the-emulator-secret-0123456789abcdef")
    assert settings.introspection_fail_closed  # the default outside ENV=dev
    async with make_app_client(settings) as api:
        r = await api.get("/v1/health/ready")
        assert r.status_code == 503, r.text
        assert r.json()["checks"]["token_introspection"] == "error"
        assert "introspection" in r.json()["errors"]["token_introspection"]
        r = await api.get("/v1/auth/whoami", headers=bearer(await _revoked_token(emu.url)))
        assert r.status_code == 503, r.text  # never silently accepted
        assert r.json()["error"]["code"] == "service_unavailable"
        assert r.json()["error"]["details"]["reason"] == "introspection_rejected"


async def test_introspection_refused_fail_open_is_reported_and_logged_once(emu, settings_factory,
                                                                           make_app_client, redis_clean, capfd):
    settings = settings_factory(scaikey_client_secret="not-the-emulator-secret-0123456789abcdef",
                                token_introspection_failure_mode="open")
    async with make_app_client(settings) as api:
        for _ in range(3):
            r = await api.get("/v1/auth/whoami", headers=bearer(await _revoked_token(emu.url)))
            assert r.status_code == 200, r.text  # the operator chose availability
        r = await api.get("/v1/health/ready")
        assert r.status_code == 200, r.text  # still ready, but the check is visibly degraded
        assert r.json()["checks"]["token_introspection"] == "degraded"
    err = capfd.readouterr().err  # the app logs JSON lines to stderr
    loud = [line for line in err.splitlines() if "introspection rejected" in line]
    assert len(loud) == 1, loud  # once per interval (start-up probe), not once per token


async def test_readiness_recovers_once_introspection_is_accepted_again(emu, settings_factory, make_app_client,
                                                                      redis_clean):
    """Fail-closed takes the process out of the load balancer, so no token would arrive to notice the fix:
    readiness itself re-probes (at most every 10 s)."""
    fault = await emu.control("POST", "/faults", json={"path": "*/introspect", "status": 401})
    async with make_app_client(settings_factory()) as api:
        r = await api.get("/v1/health/ready")
        assert r.status_code == 503 and r.json()["checks"]["token_introspection"] == "error", r.text
        await emu.control("DELETE", f"/faults/{fault['id']}")
        deadline = asyncio.get_running_loop().time() + 60
        while (r := await api.get("/v1/health/ready")).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, r.text
            await asyncio.sleep(0.5)
        assert r.json()["checks"]["token_introspection"] == "ok"
        token = await mint(emu.url, client_id="ci-deployer")
        assert (await api.get("/v1/auth/whoami", headers=bearer(token))).status_code == 200


async def test_working_introspection_reports_ok(emu, settings_factory, make_app_client, redis_clean):
    async with make_app_client(settings_factory()) as api:
        r = await api.get("/v1/health/ready")
        assert r.json()["checks"]["token_introspection"] == "ok", r.text
        r = await api.get("/v1/auth/whoami", headers=bearer(await _revoked_token(emu.url)))
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"


# --------------------------------------------------------------------------------------------- item 4
async def test_empty_jwks_cache_does_not_bypass_the_refresh_rate_limit(emu, settings_factory, make_app_client,
                                                                      redis_clean):
    await emu.control("POST", "/faults", json={"jwks_down": True})  # the start-up warm-up finds no keys
    settings = settings_factory(jwks_min_refresh_interval_seconds=600)
    async with make_app_client(settings) as api:
        await emu.control("DELETE", "/log")
        tokens = [await mint(emu.url, client_id="ci-deployer") for _ in range(6)]
        for t in tokens[:3]:  # sequential
            r = await api.get("/v1/auth/whoami", headers=bearer(t))
            assert r.status_code == 401, r.text
        rs = await asyncio.gather(*(api.get("/v1/auth/whoami", headers=bearer(t)) for t in tokens[3:]))
        assert all(r.status_code == 401 for r in rs)
        fetches = (await emu.control("GET", "/log", params={"path": "*jwks*"}))["total"]
        assert fetches <= 1, f"{fetches} JWKS fetches for 6 tokens on an empty cache"


@pytest.mark.parametrize("mirrored", [True, False], ids=["synced-user", "user-never-synced"])
async def test_pat_of_a_deleted_user_is_refused_at_once_by_every_api_process(identity_stack, emu, api_server_factory,
                                                                             mirrored):
    """Two API processes (A receives ScaiKey's user.deleted, B only shares PostgreSQL and Redis), both with bob's
    PAT warm in their caches: both refuse it right after the webhook, well inside the 30 s PAT cache TTL. A user
    the identity cache never mirrored has no cache entry to invalidate, so only the revoked token hashes,
    broadcast to every process's PAT cache, can end it at once."""
    from auth.authenticator import PAT_CACHE_TTL

    async with identity_stack(live=True) as stack:
        h = await stack.token(ADMIN)
        if mirrored:
            assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        other = api_server_factory(stack.settings)
        bob_jwt = bearer(await user_token(emu.url, "bob@acme.example", scope="secrets:read identity:read"))
        r = await stack.api.post("/v1/auth/tokens", json={"name": "laptop", "scopes": ["secrets:read"]},
                                 headers=bob_jwt)
        assert r.status_code == 201, r.text
        pat = bearer(r.json()["token"])
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as b:
            clients = {"A": stack.api, "B": b}
            for c in clients.values():  # warm each process's PAT and identity caches
                assert (await c.get("/v1/auth/whoami", headers=pat)).status_code == 200

            assert await _fire(emu, stack, "user.deleted", {"id": "usr_bob", "email": "bob@acme.example"}) == 200
            deadline = asyncio.get_running_loop().time() + PAT_CACHE_TTL / 3  # well before a cache entry expires
            pending = dict(clients)
            while pending:
                for name, c in list(pending.items()):
                    r = await c.get("/v1/auth/whoami", headers=pat)
                    if r.status_code == 401:
                        err = r.json()["error"]
                        assert (err["code"], err["details"].get("reason")) == ("token_revoked", "user_deleted"), r.text
                        del pending[name]
                    else:
                        assert r.status_code == 200, r.text
                assert asyncio.get_running_loop().time() < deadline, f"still accepted by {sorted(pending)}"
                await asyncio.sleep(0.1)
