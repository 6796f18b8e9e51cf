"""Enforcement through state.get("access").check (the test-only /v1/_probe route), and the index cache."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from api.context import RequestContext
from auth.principal import Principal, system_principal
from db.engine import Database
from services.policy_access import PolicyAccessChecker
from tests.helpers import CI, PARTNER_ADMIN, TENANT, bearer, client_token, user_token

from .conftest import PROBE


async def grant(api: httpx.AsyncClient, admin: dict[str, str], identity: str, rules: list[dict[str, Any]], *,
                name: str | None = None, headers: dict[str, str] | None = None, **binding: Any) -> str:
    """Create a policy with ``rules`` and bind it to ``identity``; returns the policy id."""
    itype = {"user": "user", "sa": "service_account", "group": "group"}[identity.split(":", 1)[0]]
    body = {"name": name or f"p-{identity.replace(':', '-').replace('@', '-')}"[:100], "rules": rules}
    if headers is not None:
        body["scope"] = "partner"
    r = await api.post("/v1/policies", json=body, headers=headers or admin)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await api.post(f"/v1/policies/{pid}/bindings", headers=headers or admin,
                       json={"identity_type": itype, "identity_id": identity, **binding})
    assert r.status_code == 201, r.text
    return pid


async def probe(api: httpx.AsyncClient, headers: dict[str, str], permission: str, path: str,
                **params: str) -> httpx.Response:
    return await api.get(f"{PROBE}/{permission}/{path}", headers=headers, params=params)


def error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 403, r.text
    return r.json()["error"]  # type: ignore[no-any-return]


async def test_the_real_checker_is_registered_and_denies_by_default(api, scaikey):
    assert isinstance(api.app.state.sv.get("access"), PolicyAccessChecker)
    ci = bearer(await client_token(scaikey, CI))
    err = error(await probe(api, ci, "read", "app/db"))
    assert err["code"] == "access_denied"
    assert err["details"] == {"path": "app/db", "permission": "read", "reason": "no_matching_rule"}


async def test_admins_need_a_policy_grant_too(api, admin):
    err = error(await probe(api, admin, "read", "app/db"))
    assert err["code"] == "access_denied"


@pytest.mark.parametrize(("permission", "path", "allowed"), [
    ("read", "app/db/password", True),
    ("list", "app/db", True),
    ("write", "app/db/password", False),   # permission not granted
    ("read", "other/db", False),           # path not matched
    ("read", "app", True),                 # trailing /** matches the prefix itself
])
async def test_direct_service_account_binding(api, admin, scaikey, permission, path, allowed):
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/**", "permissions": ["read", "list"]}])
    r = await probe(api, bearer(await client_token(scaikey, CI)), permission, path)
    assert (r.status_code == 200) is allowed, r.text


async def test_deny_rule_wins_over_every_allow(api, admin, scaikey):
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/**", "permissions": ["admin"]}], name="all")
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/secret/**", "permissions": ["read"],
                                                 "effect": "deny"}], name="deny")
    ci = bearer(await client_token(scaikey, CI))
    assert (await probe(api, ci, "read", "app/public/x")).status_code == 200
    err = error(await probe(api, ci, "read", "app/secret/x"))
    assert (err["code"], err["details"]["reason"]) == ("access_denied", "denied_by_rule")
    assert (await probe(api, ci, "write", "app/secret/x")).status_code == 200  # deny covers read only


async def test_group_bindings_come_from_the_user_token(api, admin, scaikey):
    await grant(api, admin, "group:developers", [{"path_pattern": "dev/**", "permissions": ["read"]}])
    bob = bearer(await user_token(scaikey, "bob@acme.example"))
    carol = bearer(await user_token(scaikey, "carol@acme.example"))
    r = await probe(api, bob, "read", "dev/x")
    assert r.status_code == 200 and sorted(r.json()["identity_ids"]) == [
        "group:developers", "group:oncall", "group:sre", "user:bob@acme.example"]  # the token's groups, exactly
    assert error(await probe(api, carol, "read", "dev/x"))["code"] == "access_denied"


async def test_ip_condition(api, admin, scaikey, settings_factory, make_api):
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "net/**", "permissions": ["read"],
                                                 "conditions": {"ip_ranges": ["10.0.0.0/8"]}}])
    ci = bearer(await client_token(scaikey, CI))
    err = error(await probe(api, ci, "read", "net/x"))  # the ASGI test client connects from 127.0.0.1
    assert err["code"] == "ip_not_allowed"
    assert err["details"]["failed_condition"] == {"type": "ip_ranges", "ip_ranges": ["10.0.0.0/8"],
                                                  "source_ip": "127.0.0.1"}
    # behind a trusted proxy the forwarded address counts
    proxied = settings_factory(jwks_min_refresh_interval_seconds=1, trusted_proxies="127.0.0.1/32")
    async with make_api(proxied) as behind_proxy:
        r = await probe(behind_proxy, {**ci, "X-Forwarded-For": "10.1.2.3"}, "read", "net/x")
        assert r.status_code == 200, r.text
        r = await probe(behind_proxy, {**ci, "X-Forwarded-For": "192.0.2.1"}, "read", "net/x")
        assert error(r)["details"]["failed_condition"]["source_ip"] == "192.0.2.1"


async def test_mfa_condition(api, admin, scaikey):
    await grant(api, admin, "user:alice@acme.example", [{"path_pattern": "prod/**", "permissions": ["read"],
                                                         "conditions": {"require_mfa": True}}])
    without = bearer(await user_token(scaikey, "alice@acme.example", mfa=False))
    err = error(await probe(api, without, "read", "prod/db"))
    assert err["code"] == "mfa_required"
    assert err["details"]["failed_condition"]["type"] == "require_mfa"
    assert err["details"]["failed_condition"]["mfa_verified_at"] is None
    fresh = bearer(await user_token(scaikey, "alice@acme.example", mfa=True))
    assert (await probe(api, fresh, "read", "prod/db")).status_code == 200
    stale = bearer(await user_token(scaikey, "alice@acme.example", mfa=True,
                                    auth_time=int(datetime.now(UTC).timestamp()) - 3600))
    assert error(await probe(api, stale, "read", "prod/db"))["code"] == "mfa_required"


async def test_time_window_condition(api, admin, scaikey):
    hour = datetime.now(UTC).hour
    start = (hour + 6) % 24  # a one-hour window six hours away from now
    window = {"start": f"{start:02d}:00", "end": "24:00" if start == 23 else f"{start + 1:02d}:00"}
    # and a five-hour window around now (two hours either side: no edge within reach of a slow run);
    # it may cross midnight (end <= start), which the evaluator supports
    around = {"start": f"{(hour - 2) % 24:02d}:00", "end": f"{(hour + 3) % 24:02d}:00"}
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "ops/**", "permissions": ["read"],
                                                 "conditions": {"time_window": window}},
                                                {"path_pattern": "open/**", "permissions": ["read"],
                                                 "conditions": {"time_window": around}}])
    ci = bearer(await client_token(scaikey, CI))
    err = error(await probe(api, ci, "read", "ops/x"))
    assert err["code"] == "time_window_violation"
    failed = err["details"]["failed_condition"]
    assert failed["type"] == "time_window" and failed["time_window"]["start"] == window["start"]
    assert (await probe(api, ci, "read", "open/x")).status_code == 200  # the inside case grants


async def test_expired_binding_stops_granting(api, admin, scaikey):
    """Polled, not slept: every grant is answered before ``expires_at``, the first denial after it, and the
    denial comes promptly (no cache keeps an expired binding alive)."""
    ci = bearer(await client_token(scaikey, CI))
    expires = datetime.now(UTC) + timedelta(seconds=4)
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "tmp/**", "permissions": ["read"]}],
                expires_at=expires.isoformat())
    answers: list[tuple[datetime, int, datetime]] = []  # (sent, status, received)
    while not answers or answers[-1][1] == 200:
        sent = datetime.now(UTC)
        r = await probe(api, ci, "read", "tmp/x")
        answers.append((sent, r.status_code, datetime.now(UTC)))
        assert r.status_code in (200, 403), r.text
        assert datetime.now(UTC) < expires + timedelta(seconds=20), "the expired binding still grants"
        await asyncio.sleep(0.1)
    assert answers[0][1] == 200  # granted while the binding is live
    assert all(sent < expires for sent, status, _ in answers if status == 200)  # never granted after expiry
    assert answers[-1][2] >= expires  # never denied before it
    assert error(r)["code"] == "access_denied"


async def test_policy_changes_apply_at_once_in_the_writing_process(api, admin, scaikey):
    pid = await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/**", "permissions": ["read"]}])
    ci = bearer(await client_token(scaikey, CI))
    assert (await probe(api, ci, "read", "app/x")).status_code == 200
    await api.patch(f"/v1/policies/{pid}", headers=admin, json={"is_active": False})
    assert (await probe(api, ci, "read", "app/x")).status_code == 403
    await api.patch(f"/v1/policies/{pid}", headers=admin, json={"is_active": True})
    assert (await probe(api, ci, "read", "app/x")).status_code == 200
    bindings = (await api.get(f"/v1/policies/{pid}/bindings", headers=admin)).json()["bindings"]
    await api.delete(f"/v1/policies/{pid}/bindings/{bindings[0]['id']}", headers=admin)
    assert (await probe(api, ci, "read", "app/x")).status_code == 403


async def test_denials_emit_deduplicated_violation_events(api, scaikey, db_url):
    ci = bearer(await client_token(scaikey, CI))
    for _ in range(3):
        assert (await probe(api, ci, "write", "app/x")).status_code == 403
    assert (await probe(api, ci, "read", "app/y")).status_code == 403
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT tenant_id, identity_id, path, data FROM events"
                                " WHERE event_type = 'policy.violation' ORDER BY seq")
    finally:
        await conn.close()
    assert [(r["path"], r["identity_id"], r["tenant_id"]) for r in rows] == [
        ("app/x", "sa:ci-deployer", TENANT), ("app/y", "sa:ci-deployer", TENANT)]
    import orjson

    first, second = (orjson.loads(r["data"]) for r in rows)
    assert first["permission"] == "write" and first["reason"] == "no_matching_rule"
    assert second["suppressed"] == 2  # the two repeats of the first denial


async def test_partner_policies_apply_in_every_tenant_and_govern_partner_scope(api, admin, scaikey):
    partner = bearer(await client_token(scaikey, PARTNER_ADMIN))
    erin = bearer(await user_token(scaikey, "erin@acme.example"))  # home tenant tnt_acme_dev
    assert (await api.get("/v1/auth/whoami", headers=erin)).status_code == 200  # tnt_acme_dev now known
    # a binding names an identity of the tenant it is made in: bind erin while acting in her tenant
    await grant(api, admin, "user:erin@acme.example", [{"path_pattern": "shared/**", "permissions": ["read"]}],
                headers={**partner, "X-Tenant-ID": "tnt_acme_dev"}, name="partner-shared")
    assert (await probe(api, erin, "read", "shared/ca")).status_code == 200
    assert (await probe(api, erin, "read", "shared/ca", scope="partner")).status_code == 200
    # a tenant policy never grants on partner-scope resources
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "shared/**", "permissions": ["read"]}])
    ci = bearer(await client_token(scaikey, CI))
    assert (await probe(api, ci, "read", "shared/ca")).status_code == 200
    assert (await probe(api, ci, "read", "shared/ca", scope="partner")).status_code == 403


async def test_a_change_in_one_process_reaches_another_by_broadcast(api, admin, scaikey, settings_factory, make_api):
    # the second app re-checks versions only every 300 s: seeing the change fast proves the pub/sub path
    other_settings = settings_factory(jwks_min_refresh_interval_seconds=1, policy_cache_recheck_seconds=300)
    ci = bearer(await client_token(scaikey, CI))
    async with make_api(other_settings) as other:
        assert (await probe(other, ci, "read", "app/x")).status_code == 403  # caches the empty index
        await wait_subscribers(other_settings.redis_url, 2)  # both apps listen (no guessed sleep)
        pid = await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/**", "permissions": ["read"]}])
        assert await eventually(lambda: probe(other, ci, "read", "app/x"), 200)
        await api.delete(f"/v1/policies/{pid}?force=true", headers=admin)
        assert await eventually(lambda: probe(other, ci, "read", "app/x"), 403)


async def wait_subscribers(redis_url: str, n: int, timeout: float = 30.0) -> None:
    """Until ``n`` connections subscribe to the policy invalidation channel."""
    from services.policy_access import CHANNEL

    r = aioredis.Redis.from_url(redis_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while (await r.pubsub_numsub(CHANNEL))[0][1] < n:
            assert asyncio.get_running_loop().time() < deadline, "the policy listeners never subscribed"
            await asyncio.sleep(0.05)
    finally:
        await r.aclose()


async def eventually(call: Any, status: int, timeout: float = 20.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if (await call()).status_code == status:
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)


# --- the checker directly: version counter, no per-request Redis, Redis-down fallback -------------


class CountingRedis:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.mgets = 0

    async def mget(self, keys: list[str]) -> Any:
        self.mgets += 1
        return await self.inner.mget(keys)

    def pipeline(self, **kw: Any) -> Any:
        return self.inner.pipeline(**kw)


def ctx_for(principal: Principal) -> RequestContext:
    return RequestContext(principal=principal, tenant_id=TENANT, partner_id="prt_acme", request_id="req_t",
                          source_ip="127.0.0.1", user_agent=None, scope=None, category=None)


CI_PRINCIPAL = Principal(identity_id="sa:ci-deployer", identity_type="service_account", subject="ci-deployer",
                         tenant_id=TENANT, partner_id="prt_acme", scopes=frozenset({"secrets:read"}))


async def insert_grant(db_url: str, identity: str, pattern: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO policies (id, tenant_id, partner_id, name, rules) VALUES ('pol_direct', $1, 'prt_acme',"
            " 'direct', $2::jsonb)", TENANT, f'[{{"path_pattern": "{pattern}", "permissions": ["read"]}}]')
        await conn.execute(
            "INSERT INTO policy_bindings (id, tenant_id, policy_id, identity_type, identity_id)"
            " VALUES ('bnd_direct', $1, 'pol_direct', 'service_account', $2)", TENANT, identity)
    finally:
        await conn.close()


@pytest.fixture
async def db_and_redis(settings, redis_clean):
    db = Database(settings, pool_size=2)
    redis = aioredis.Redis.from_url(settings.redis_url)
    yield db, redis
    await redis.aclose()
    await db.dispose()


async def test_version_counter_catches_changes_without_broadcast_and_costs_no_redis_per_check(
        db_and_redis, db_url):
    db, redis = db_and_redis
    counting = CountingRedis(redis)
    reader = PolicyAccessChecker(db, counting, recheck_seconds=60)
    writer = PolicyAccessChecker(db, redis)
    ctx = ctx_for(CI_PRINCIPAL)
    assert not await reader.allowed(ctx, "app/x", "read")
    for _ in range(200):
        await reader.allowed(ctx, "app/x", "read")
    assert (counting.mgets, reader.rebuilds) == (1, 1)  # warm: no Redis round trip, no rebuild per check

    await insert_grant(db_url, "sa:ci-deployer", "app/**")
    await writer.invalidate(TENANT)  # INCR + publish; the reader has no listener
    assert not await reader.allowed(ctx, "app/x", "read")  # still inside its re-check interval
    reader.recheck = 0.05
    await asyncio.sleep(0.06)
    assert await reader.allowed(ctx, "app/x", "read")
    assert reader.rebuilds == 2
    await asyncio.sleep(0.06)
    assert await reader.allowed(ctx, "app/x", "read")
    assert reader.rebuilds == 2  # counters unchanged: re-checked, not rebuilt


async def test_redis_down_falls_back_to_a_short_ttl(db_and_redis, db_url):
    db, _ = db_and_redis
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        ttl = 3.0  # seconds: long enough that the "still trusted" check cannot race it on a loaded machine
        checker = PolicyAccessChecker(db, dead, recheck_seconds=0.01, fallback_ttl_seconds=ttl)
        ctx = ctx_for(CI_PRINCIPAL)
        t0 = time.monotonic()  # the entry is built after this instant
        assert not await checker.allowed(ctx, "app/x", "read")
        await insert_grant(db_url, "sa:ci-deployer", "app/**")
        assert not await checker.allowed(ctx, "app/x", "read")  # trusted within the fallback TTL
        assert checker.rebuilds == 1
        while not await checker.allowed(ctx, "app/x", "read"):  # polled until rebuilt from PostgreSQL
            assert time.monotonic() - t0 < ttl + 20, "never rebuilt after the fallback TTL"
            await asyncio.sleep(0.05)
        assert time.monotonic() - t0 >= ttl  # not before the TTL ran out
        assert checker.rebuilds == 2
        await checker.invalidate(TENANT)  # broadcast fails quietly
    finally:
        await dead.aclose()


async def test_system_principals_are_not_evaluated(db_and_redis):
    db, redis = db_and_redis
    checker = PolicyAccessChecker(db, redis)
    ctx = ctx_for(system_principal("rotation-scheduler", TENANT, "prt_acme"))
    await checker.check(ctx, "app/x", "read")
    assert await checker.filter(ctx, ["a", "b"], "list") == ["a", "b"]


async def test_filter_keeps_only_permitted_paths(db_and_redis, db_url):
    db, redis = db_and_redis
    await insert_grant(db_url, "sa:ci-deployer", "app/*")
    checker = PolicyAccessChecker(db, redis)
    ctx = ctx_for(CI_PRINCIPAL)
    assert await checker.filter(ctx, ["app/a", "other/b", "app/c", "app/c/d"], "read") == ["app/a", "app/c"]
