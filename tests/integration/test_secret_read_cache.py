"""The secret-row read cache: hits on repeated reads, never serves a stale row across API processes, never
holds plaintext, and is bypassed when the generation counter is unknown."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.helpers import reset_emulator
from tests.integration.secrets_helpers import Api, grant_test_identities


@pytest.fixture
async def two_apis(scaikey: str, settings_factory: Any, make_app_client: Any, redis_clean: str):
    """Two API instances sharing PostgreSQL and Redis, like two workers behind a load balancer."""
    await reset_emulator(scaikey)
    settings = settings_factory()
    async with AsyncExitStack() as stack:
        apis = []
        for _ in range(2):
            client = await stack.enter_async_context(make_app_client(settings))
            apis.append(Api(client, settings, scaikey, client._transport.app))  # type: ignore[attr-defined]
        await grant_test_identities(apis[0])
        yield apis


def cache_of(api: Api) -> Any:
    return api.component("secrets").cache


async def test_repeated_reads_hit_and_the_cache_holds_no_plaintext(two_apis):
    a, _ = two_apis
    h = await a.token()
    assert (await a.put("app/cached", {"password": "plain-marker-123"}, h)).status_code == 201
    first = await a.client.get("/v1/secrets/app/cached", headers=h)
    hits_before = cache_of(a)._hit._value.get()
    second = await a.client.get("/v1/secrets/app/cached", headers=h)
    assert first.json() == second.json() and second.json()["data"] == {"password": "plain-marker-123"}
    assert cache_of(a)._hit._value.get() == hits_before + 1
    cached = repr([row for _, bucket in cache_of(a)._owners.values() for _, row in bucket.values()])
    assert "plain-marker-123" not in cached


async def test_a_write_in_one_process_is_seen_at_once_by_another(two_apis):
    a, b = two_apis
    h = await a.token()
    await a.put("app/shared", {"v": "1"}, h)
    for _ in range(2):  # fill a's cache
        assert (await a.client.get("/v1/secrets/app/shared", headers=h)).json()["data"] == {"v": "1"}
    assert (await b.put("app/shared", {"v": "2"}, h)).status_code == 200
    assert (await a.client.get("/v1/secrets/app/shared", headers=h)).json()["data"] == {"v": "2"}
    assert (await b.client.delete("/v1/secrets/app/shared", headers=h)).status_code == 204
    r = await a.client.get("/v1/secrets/app/shared", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    assert (await b.client.post("/v1/secrets/app/shared:restore", headers=h)).status_code == 200
    assert (await a.client.get("/v1/secrets/app/shared", headers=h)).json()["data"] == {"v": "2"}
    assert (await b.client.post("/v1/secrets/app/shared:destroy", json={"versions": [2]}, headers=h)).status_code == 200
    r = await a.client.get("/v1/secrets/app/shared", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "version_not_found"


async def test_reads_bypass_the_cache_when_the_generation_is_unknown(two_apis):
    a, b = two_apis
    h = await a.token()
    await a.put("app/nolimit", {"v": "1"}, h)
    await a.client.get("/v1/secrets/app/nolimit", headers=h)
    a.component("rate_limiter")._watches.clear()  # as when Redis is down: no generation comes back
    misses = cache_of(a)._miss._value.get()
    await b.put("app/nolimit", {"v": "2"}, h)
    assert (await a.client.get("/v1/secrets/app/nolimit", headers=h)).json()["data"] == {"v": "2"}
    assert cache_of(a)._miss._value.get() == misses  # not even consulted


async def test_rejected_writes_do_not_invalidate_the_cache(two_apis):
    a, b = two_apis
    h = await a.token()
    await a.put("app/stable", {"v": "1"}, h)
    await a.client.get("/v1/secrets/app/stable", headers=h)  # fill a's cache
    r = await b.put("app/stable", {"v": "2"}, h, secret_type="blob")  # 400 invalid_secret_type: nothing changed
    assert r.status_code == 400
    r = await b.put("app/stable", {"v": "2"}, h, options={"cas": 7})  # 409 version_conflict: rolled back
    assert r.status_code == 409
    hits = cache_of(a)._hit._value.get()
    got = await a.client.get("/v1/secrets/app/stable", headers=h)
    assert got.json()["data"] == {"v": "1"}
    assert cache_of(a)._hit._value.get() == hits + 1, "a rejected write must not cost other processes their cache"
