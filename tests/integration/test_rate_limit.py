"""Rate limiting through the HTTP API: headers, 429 with category, refill, per-identity buckets, tenant
overrides, and the in-memory fallback while Redis is down."""

from __future__ import annotations

import asyncio
import time

import pytest

from devstack import services as svc
from tests.helpers import ADMIN, CI, PARTNER_ADMIN, bearer, client_token, reset_emulator, user_token


@pytest.fixture
async def api(scaikey, settings_factory, make_app_client, redis_clean):
    await reset_emulator(scaikey)
    settings = settings_factory(rate_limit_overrides="auth=60", audit_seal_interval_seconds=0)
    async with make_app_client(settings) as client:
        yield client


async def _until_limited(api, token: str, max_requests: int = 400):
    ok = []
    for _ in range(max_requests):
        r = await api.get("/v1/auth/whoami", headers=bearer(token))
        if r.status_code == 429:
            return ok, r
        assert r.status_code == 200, r.text
        ok.append(r)
    raise AssertionError("never rate limited")


async def test_headers_then_429_with_category_then_recovery(api, scaikey):
    token = await client_token(scaikey, CI)
    started = time.monotonic()
    ok, limited = await _until_limited(api, token)
    # the bucket holds a minute's worth (60), plus at most what refilled meanwhile (1 token a second)
    assert 60 <= len(ok) <= 60 + int(time.monotonic() - started), len(ok)
    first = ok[0].headers
    assert first["x-ratelimit-limit"] == "60"
    assert int(first["x-ratelimit-remaining"]) == 59
    assert int(first["x-ratelimit-reset"]) >= int(time.time())
    assert int(ok[-1].headers["x-ratelimit-remaining"]) < int(first["x-ratelimit-remaining"])
    err = limited.json()["error"]
    assert err["code"] == "rate_limited"
    assert err["details"]["category"] == "auth" and err["details"]["limit"] == 60
    retry_after = int(limited.headers["retry-after"])
    assert retry_after >= 1 and err["details"]["retry_after"] == retry_after
    assert limited.headers["x-ratelimit-remaining"] == "0"
    await asyncio.sleep(retry_after + 0.2)
    again = await api.get("/v1/auth/whoami", headers=bearer(token))
    assert again.status_code == 200


async def test_a_bucket_allows_exactly_its_limit(scaikey, settings_factory, make_app_client, redis_clean):
    """A fresh identity (Redis flushed) with a per-minute limit of 5 sends 8 requests: exactly 5 are allowed and
    3 refused, in that order. The bucket refills 5 tokens a minute, one every 12 s, so nothing refills while the
    8 requests run (checked, so a very slow run fails with its reason instead of a miscount)."""
    await reset_emulator(scaikey)
    settings = settings_factory(rate_limit_overrides="auth=5", audit_seal_interval_seconds=0)
    async with make_app_client(settings) as api:
        token = await client_token(scaikey, CI)
        started = time.monotonic()
        answers = [await api.get("/v1/auth/whoami", headers=bearer(token)) for _ in range(8)]
        assert time.monotonic() - started < 12, "too slow for the no-refill premise"
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3, [r.text for r in answers]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["4", "3", "2", "1", "0", "0", "0", "0"]
    assert {r.headers["x-ratelimit-limit"] for r in answers} == {"5"}
    assert {(r.json()["error"]["code"], r.json()["error"]["details"]["limit"]) for r in answers[5:]} == {
        ("rate_limited", 5)}


async def test_buckets_are_per_identity(api, scaikey):
    ci = await client_token(scaikey, CI)
    await _until_limited(api, ci)
    alice = await user_token(scaikey, "alice@acme.example", scope="secrets:read")
    r = await api.get("/v1/auth/whoami", headers=bearer(alice))
    assert r.status_code == 200 and int(r.headers["x-ratelimit-remaining"]) >= 58


async def test_health_and_unauthenticated_routes_carry_no_limit(api):
    r = await api.get("/v1/health")
    assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers


async def test_tenant_override_via_admin_api(api, scaikey):
    admin = await client_token(scaikey, ADMIN)
    r = await api.get("/v1/admin/rate-limits", headers=bearer(admin))
    assert r.status_code == 200
    body = r.json()
    assert body["defaults"]["read_secrets"] == 1000 and body["defaults"]["auth"] == 60  # env override
    assert body["defaults"]["audit_export"] == 5 and body["overrides"] == {}
    # raising read_secrets above its default needs the partner admin (a tenant admin may only lower limits)
    partner = await client_token(scaikey, PARTNER_ADMIN)
    r = await api.put("/v1/admin/rate-limits", json={"limits": {"auth": 5, "read_secrets": 2000}},
                      headers=bearer(partner))
    assert r.status_code == 200, r.text
    assert r.json()["effective"]["auth"] == 5 and r.json()["overrides"] == {"auth": 5, "read_secrets": 2000}
    ci = await client_token(scaikey, CI)
    ok, limited = await _until_limited(api, ci)
    assert len(ok) < 10 and limited.json()["error"]["details"]["limit"] == 5
    bad = await api.put("/v1/admin/rate-limits", json={"limits": {"nope": 5, "auth": 0}}, headers=bearer(admin))
    assert bad.status_code == 422 and len(bad.json()["error"]["details"]["fields"]) == 2
    r = await api.put("/v1/admin/rate-limits", json={"limits": {"auth": None}}, headers=bearer(admin))
    assert r.json()["overrides"] == {"read_secrets": 2000}
    no_admin = await api.get("/v1/admin/rate-limits", headers=bearer(ci))
    assert no_admin.status_code in (403, 429)


async def test_redis_down_falls_back_and_health_says_degraded(scaikey, settings_factory, make_app_client,
                                                              services, tmp_path):
    await reset_emulator(scaikey)
    redis = svc.start_redis(tmp_path / "redis", svc.free_port())
    try:
        settings = settings_factory(redis_url=redis.url, rate_limit_overrides="auth=20",
                                    audit_seal_interval_seconds=0)
        async with make_app_client(settings) as api:
            token = await client_token(scaikey, CI)
            admin = bearer(await client_token(scaikey, ADMIN))
            r = await api.get("/v1/auth/whoami", headers=bearer(token))
            assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "20"
            health = (await api.get("/v1/health/detailed", headers=admin)).json()
            assert health["checks"]["rate_limiter"]["status"] == "ok"
            redis.stop()
            for _ in range(5):  # still served, still limited (per-process buckets)
                r = await api.get("/v1/auth/whoami", headers=bearer(token))
                assert r.status_code == 200
                assert r.headers["x-ratelimit-limit"] == "20"
            health = (await api.get("/v1/health/detailed", headers=admin)).json()
            assert health["checks"]["rate_limiter"]["status"] == "degraded"
            assert health["status"] == "degraded"
            _, limited = await _until_limited(api, token)
            assert limited.json()["error"]["details"]["category"] == "auth"
    finally:
        redis.stop()
