"""Issue 11 items 8, 11, 12, 13 and 15 through the HTTP API: the client address behind proxies, the public
health endpoints, denials charged to the rate limiter, tenant rate-limit ceilings, and SSRF guard gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN, CI, PARTNER_ADMIN, TENANT, bearer, client_token, reset_emulator

pytestmark = pytest.mark.usefixtures("redis_clean")


@pytest.fixture
def make_api(scaikey: str, settings_factory: Callable[..., Any], make_app_client: Any) -> Callable[..., Any]:
    """``async with make_api(**settings) as (client, settings)``: an in-process app (the ASGI test client's peer
    address is 127.0.0.1)."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        await reset_emulator(scaikey)
        settings = settings_factory(**{"audit_seal_interval_seconds": 0, **overrides})
        async with make_app_client(settings) as client:
            yield client, settings

    return make


async def _sql(settings: Any, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _audit_of(settings: Any, request_id: str) -> list[asyncpg.Record]:
    return await _sql(settings, "SELECT * FROM audit_log WHERE request_id = $1", request_id)


# ----------------------------------------------------------------------------- 11.8 X-Forwarded-For


async def _grant(api: httpx.AsyncClient, admin: dict[str, str], rules: list[dict[str, Any]]) -> None:
    r = await api.post("/v1/policies", json={"name": "net", "rules": rules}, headers=admin)
    assert r.status_code == 201, r.text
    r = await api.post(f"/v1/policies/{r.json()['id']}/bindings", headers=admin,
                       json={"identity_type": "service_account", "identity_id": "sa:ci-deployer"})
    assert r.status_code == 201, r.text


async def test_forwarded_for_is_walked_from_the_right_past_trusted_proxies(make_api, scaikey):
    # 127.0.0.1 (the test client) is the load balancer; 10.9.0.0/16 an inner proxy tier.
    async with make_api(trusted_proxies="127.0.0.1/32,10.9.0.0/16") as (api, settings):
        admin = bearer(await client_token(scaikey, ADMIN))
        await _grant(api, admin, [
            {"path_pattern": "net/**", "permissions": ["write"]},
            {"path_pattern": "net/**", "permissions": ["read"], "conditions": {"ip_ranges": ["203.0.113.0/24"]}}])
        ci = bearer(await client_token(scaikey, CI))
        assert (await api.put("/v1/secrets/net/x", json={"data": {"k": "v"}}, headers=ci)).status_code == 201

        async def read(xff: str, rid: str) -> httpx.Response:
            return await api.get("/v1/secrets/net/x", headers={**ci, "X-Forwarded-For": xff, "X-Request-ID": rid})

        # The client wrote "203.0.113.9" itself; the proxy appended the address it really came from.
        r = await read("203.0.113.9, 198.51.100.1", "xff-spoof")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "ip_not_allowed"
        assert r.json()["error"]["details"]["failed_condition"]["source_ip"] == "198.51.100.1"
        assert [row["source_ip"] for row in await _audit_of(settings, "xff-spoof")] == ["198.51.100.1"]
        # A real client in the range, seen through the inner proxy tier (skipped as trusted).
        r = await read("6.6.6.6, 203.0.113.9, 10.9.1.1", "xff-ok")
        assert r.status_code == 200, r.text
        assert [row["source_ip"] for row in await _audit_of(settings, "xff-ok")] == ["203.0.113.9"]
        # Anything that is not an IP address where the walk stops: the peer (the proxy) is all we know.
        for bad in ("203.0.113.9, unknown", "203.0.113.9, 203.0.113.10:443", "203.0.113.9, ", "<script>"):
            r = await read(bad, "xff-bad")
            assert r.status_code == 403 and r.json()["error"]["details"]["failed_condition"]["source_ip"] \
                == "127.0.0.1", (bad, r.text)


async def test_forwarded_for_is_ignored_from_untrusted_peers(make_api, scaikey):
    async with make_api(trusted_proxies="10.0.0.0/8") as (api, settings):
        ci = bearer(await client_token(scaikey, CI))
        r = await api.get("/v1/auth/whoami", headers={**ci, "X-Forwarded-For": "203.0.113.9",
                                                      "X-Request-ID": "xff-untrusted"})
        assert r.status_code == 200
        assert [row["source_ip"] for row in await _audit_of(settings, "xff-untrusted")] == ["127.0.0.1"]


# ----------------------------------------------------------------------------- 11.11 public health endpoints


async def test_detailed_health_needs_the_admin_scope(make_api, scaikey):
    async with make_api() as (api, settings):
        r = await api.get("/v1/health/detailed")
        assert r.status_code == 401 and r.json()["error"]["code"] == "authentication_required"
        ci = bearer(await client_token(scaikey, CI))
        r = await api.get("/v1/health/detailed", headers={**ci, "X-Request-ID": "detailed-denied"})
        assert r.status_code == 403 and r.json()["error"]["details"]["required_scope"] == "admin"
        admin = bearer(await client_token(scaikey, ADMIN))
        r = await api.get("/v1/health/detailed", headers={**admin, "X-Request-ID": "detailed-ok"})
        assert r.status_code == 200 and r.json()["checks"]["database"]["status"] == "ok"
        assert [(a["action"], a["success"]) for a in await _audit_of(settings, "detailed-ok")] \
            == [("health_detailed", True)]
        # liveness and readiness stay public
        assert (await api.get("/v1/health")).status_code == 200
        assert (await api.get("/v1/health/ready")).status_code == 200
        doc = (await api.get("/openapi.json")).json()
        assert doc["paths"]["/v1/health/detailed"]["get"]["security"] == [{"bearerAuth": ["admin"]}]
        assert doc["paths"]["/v1/health/ready"]["get"]["security"] == []


async def test_readiness_probes_share_one_dependency_check(make_api):
    async with make_api(health_cache_seconds=30) as (api, _):
        db = api._transport.app.state.sv.db  # type: ignore[attr-defined]
        pings = 0
        real_ping = db.ping

        async def counting_ping() -> None:
            nonlocal pings
            pings += 1
            await real_ping()

        db.ping = counting_ping
        replies = await asyncio.gather(*(api.get("/v1/health/ready") for _ in range(20)))
        replies += [await api.get("/v1/health/ready") for _ in range(10)]
        assert {r.status_code for r in replies} == {200}
        assert pings == 1  # 30 anonymous probes, one round of dependency checks


async def test_public_endpoints_are_rate_limited_per_client_address(make_api):
    async with make_api(health_rate_limit_per_minute=5, trusted_proxies="127.0.0.1/32") as (api, _):
        for _ in range(5):
            assert (await api.get("/v1/health", headers={"X-Forwarded-For": "198.51.100.7"})).status_code == 200
        for path in ("/v1/health", "/v1/health/ready", "/v1/version", "/v1/metrics"):
            r = await api.get(path, headers={"X-Forwarded-For": "198.51.100.7"})
            assert r.status_code == 429, (path, r.text)
            err = r.json()["error"]
            assert err["code"] == "rate_limited" and err["details"]["limit"] == 5
            assert int(r.headers["retry-after"]) >= 1
        # another address has its own bucket; IPv6 clients share one per /64
        assert (await api.get("/v1/health", headers={"X-Forwarded-For": "198.51.100.8"})).status_code == 200
        for i in range(5):
            r = await api.get("/v1/health", headers={"X-Forwarded-For": f"2001:db8:1:2::{i + 1}"})
            assert r.status_code == 200
        r = await api.get("/v1/health", headers={"X-Forwarded-For": "2001:db8:1:2:ffff::9"})
        assert r.status_code == 429


# ----------------------------------------------------------------------------- 11.12 denials are charged


async def test_scope_denials_are_rate_limited_before_they_are_audited(make_api, scaikey):
    async with make_api(rate_limit_overrides="admin_operations=3") as (api, settings):
        ci = bearer(await client_token(scaikey, CI))  # no admin scope
        statuses = []
        for i in range(8):
            r = await api.get("/v1/admin/rate-limits", headers={**ci, "X-Request-ID": f"deny-{i}"})
            statuses.append(r.status_code)
        assert statuses[:3] == [403, 403, 403] and set(statuses[3:]) == {429}, statuses
        limited = await api.get("/v1/admin/rate-limits", headers=ci)
        assert limited.json()["error"]["details"]["category"] == "admin_operations"
        assert "retry-after" in limited.headers and limited.headers["x-ratelimit-remaining"] == "0"
        rows = await _sql(settings, "SELECT error_code FROM audit_log WHERE request_id LIKE 'deny-%'")
        assert sorted(r["error_code"] for r in rows) == ["insufficient_scope"] * 3  # the 429s wrote nothing


async def test_tenant_switch_denials_are_rate_limited_too(make_api, scaikey):
    async with make_api(rate_limit_overrides="auth=2") as (api, settings):
        ci = bearer(await client_token(scaikey, CI), **{"X-Tenant-ID": "tnt_acme_dev"})
        statuses = [(await api.get("/v1/auth/whoami", headers={**ci, "X-Request-ID": f"switch-{i}"})).status_code
                    for i in range(5)]
        assert statuses[:2] == [403, 403] and set(statuses[2:]) == {429}, statuses
        rows = await _sql(settings, "SELECT action FROM audit_log WHERE request_id LIKE 'switch-%'")
        assert [r["action"] for r in rows] == ["tenant_access"] * 2


# ----------------------------------------------------------------------------- 11.13 rate-limit ceilings


async def test_tenant_admins_cannot_raise_their_own_limits(make_api, scaikey):
    async with make_api(rate_limit_tenant_ceiling=10_000) as (api, settings):
        admin = bearer(await client_token(scaikey, ADMIN))             # tenant_admin of tnt_acme_prod
        partner = bearer(await client_token(scaikey, PARTNER_ADMIN))   # partner_admin of prt_acme

        async def put(headers: dict[str, str], **limits: Any) -> httpx.Response:
            return await api.put("/v1/admin/rate-limits", json={"limits": limits}, headers=headers)

        r = await put(admin, read_secrets=2**40)  # was a 500 (integer out of range)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["fields"][0]["field"] == "limits.read_secrets"
        r = await put(admin, read_secrets=5000)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
        assert r.json()["error"]["details"]["categories"] == ["read_secrets"]
        assert (await api.get("/v1/admin/rate-limits", headers=admin)).json()["overrides"] == {}
        r = await put(admin, read_secrets=500, write_secrets=100)  # lowering (or keeping the default) is fine
        assert r.status_code == 200 and r.json()["effective"]["read_secrets"] == 500, r.text

        r = await put(partner, read_secrets=20_000)  # even a partner admin stays under the ceiling
        assert r.status_code == 422 and "10000" in r.json()["error"]["details"]["fields"][0]["message"]
        r = await put(partner, read_secrets=5000)
        assert r.status_code == 200 and r.json()["effective"]["read_secrets"] == 5000, r.text
        assert r.json()["ceiling"] == 10_000
        # the tenant admin may keep or lower what the partner granted, not go beyond it
        assert (await put(admin, read_secrets=5000)).status_code == 200
        assert (await put(admin, read_secrets=5001)).status_code == 403
        assert (await put(admin, read_secrets=3000)).status_code == 200

        # a row stored before the ceiling existed is clamped, not obeyed
        await _sql(settings, "UPDATE rate_limit_overrides SET limit_per_minute = 2000000000 WHERE tenant_id = $1"
                             " AND category = 'read_secrets'", TENANT)
        api._transport.app.state.sv.components["rate_limits"].invalidate(TENANT)  # type: ignore[attr-defined]
        body = (await api.get("/v1/admin/rate-limits", headers=admin)).json()
        assert body["effective"]["read_secrets"] == 10_000
        r = await api.get("/v1/secrets/none/here", headers=bearer(await client_token(scaikey, CI)))
        assert r.headers["x-ratelimit-limit"] == "10000"


# ----------------------------------------------------------------------------- 11.15 SSRF guard gaps

_SSRF = [
    ("https://[2002:a00:1::1]/hook", "6to4"),                 # 6to4 relay to 10.0.0.1
    ("https://[2002:808:808::1]/hook", "6to4"),               # 6to4 at all: the relay picks the IPv4 target
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "teredo"),
    ("https://[fec0::1]/hook", "site_local"),
    ("https://[::10.0.0.1]/hook", "private"),                 # IPv4-compatible
    ("https://[::ffff:0:10.0.0.1]/hook", "private"),          # IPv4-translated
    ("https://[64:ff9b::a9fe:a9fe]/latest/meta-data", "link_local"),  # NAT64 to 169.254.169.254
    ("https://[64:ff9b::7f00:1]/hook", "loopback"),
    ("https://[64:ff9b:1::a00:1]/hook", "nat64_local"),
    ("https://[2606:4700::5efe:a00:1]/hook", "private"),      # ISATAP interface id embedding 10.0.0.1
    ("https://[::ffff:192.168.1.1]/hook", "private"),
]


@pytest.mark.parametrize(("url", "reason"), _SSRF)
async def test_webhook_urls_embedding_private_ipv4_are_refused(make_api, scaikey, url, reason):
    async with make_api(webhook_allow_private=False, rate_limit_overrides="webhook_operations=100000") as (api, _):
        admin = bearer(await client_token(scaikey, ADMIN))
        r = await api.post("/v1/webhooks", json={"name": "x", "url": url, "secret": "s" * 32, "events": ["*"]},
                           headers=admin)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_url" and err["details"]["reason"] == reason


async def test_nat64_to_a_public_ipv4_is_allowed(make_api, scaikey):
    async with make_api(webhook_allow_private=False) as (api, _):
        admin = bearer(await client_token(scaikey, ADMIN))
        r = await api.post("/v1/webhooks", json={"name": "x", "url": "https://[64:ff9b::5db8:d70e]/hook",
                                                 "secret": "s" * 32, "events": ["*"]}, headers=admin)
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(("url", "reason"), [_SSRF[0], _SSRF[2], _SSRF[3], _SSRF[6]])
async def test_delivery_refuses_the_same_addresses(settings_factory, url, reason):
    """The delivery-time check (DNS rebinding) uses the same rules: nothing is sent to such an address."""
    from services.events.webhook_sender import WebhookSender

    sender = WebhookSender(settings_factory(webhook_allow_private=False))
    try:
        res = await sender.send(url, "s" * 32, b"{}", event_id="evt_1", event_type="secret.created")
    finally:
        await sender.aclose()
    assert not res.ok and res.response_code is None and res.error == f"url refused: {reason}"
