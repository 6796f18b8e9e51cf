"""An API process SIGKILLed in the middle of a burst of changes never leaves a change without its audit row."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.helpers import CI, bearer, client_token, reset_emulator

CREATORS = 16


async def test_sigkill_during_pat_burst_leaves_no_unaudited_change(scaikey, settings_factory, api_server_factory,
                                                                    redis_clean, db_url):
    await reset_emulator(scaikey)
    server = api_server_factory(settings_factory(rate_limit_overrides="auth=100000"))
    token = await client_token(scaikey, CI)
    created: list[str] = []
    stop = asyncio.Event()

    async def creator(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                r = await client.post("/v1/auth/tokens", json={"name": "burst", "scopes": ["secrets:read"]},
                                      headers=bearer(token))
            except httpx.HTTPError:
                return  # the server died under us
            if r.status_code == 201:
                created.append(r.json()["id"])

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        tasks = [asyncio.create_task(creator(client)) for _ in range(CREATORS)]
        deadline = asyncio.get_running_loop().time() + 60
        while len(created) < 40:
            assert asyncio.get_running_loop().time() < deadline, server.log_tail()
            await asyncio.sleep(0.01)
        server.handle.kill()  # SIGKILL mid-burst
        stop.set()
        await asyncio.gather(*tasks)

    conn = await asyncpg.connect(db_url)
    try:
        pats = {r["id"] for r in await conn.fetch("SELECT id FROM personal_access_tokens")}
        audited = {r["resource_id"] for r in await conn.fetch(
            "SELECT resource_id FROM audit_log WHERE action = 'token_create' AND success")}
    finally:
        await conn.close()
    assert set(created) <= pats  # every 201 the client saw is durable
    assert len(pats - set(created)) <= CREATORS  # only the requests in flight at the kill committed unanswered
    assert pats - audited == set(), "a token exists without its audit row"
    assert audited - pats == set(), "an audit row claims a token that does not exist"
