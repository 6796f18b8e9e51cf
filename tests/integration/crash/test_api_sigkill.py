"""SIGKILL the API (a real uvicorn process) in the middle of a burst of secret PUTs and DELETEs.

Afterwards, read the database directly: every secret version, its ``write`` audit row and its
``secret.created``/``secret.updated`` outbox event exist together or not at all (exact one-to-one matches),
every soft delete has exactly one ``delete`` audit row and one ``secret.deleted`` event, every write the
client saw acknowledged (2xx) is there, and at most one request per client task (the ones in flight at the
kill) committed without an acknowledgement.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from tests.helpers import ADMIN, TENANT, bearer, client_token, grant, reset_emulator, user_token

WRITERS = 12
USER = "alice@acme.example"
SCOPES = "secrets:read secrets:write secrets:list secrets:delete"


@pytest.mark.slow
async def test_sigkill_during_put_delete_burst_keeps_version_audit_and_event_together(
        scaikey, settings_factory, api_server_factory, redis_clean, db_url):
    await reset_emulator(scaikey)
    server = api_server_factory(settings_factory(rate_limit_enabled=False))
    user = bearer(await user_token(scaikey, USER, scope=SCOPES, client_id="vault-ui"))
    acked_versions: set[tuple[str, int]] = set()
    acked_deletes: set[str] = set()
    stop = asyncio.Event()

    async def writer(client: httpx.AsyncClient, w: int) -> None:
        """Per secret: PUT v1, PUT v2, DELETE; one request in flight at a time."""
        j = 0
        while not stop.is_set():
            path = f"crash/w{w}/s{j}"
            try:
                for _ in range(2):
                    r = await client.put(f"/v1/secrets/{path}", json={"data": {"n": j}}, headers=user)
                    if r.status_code // 100 != 2:
                        return
                    acked_versions.add((path, r.json()["version"]))
                r = await client.delete(f"/v1/secrets/{path}", headers=user)
                if r.status_code // 100 != 2:
                    return
                acked_deletes.add(path)
            except httpx.HTTPError:
                return  # the server died under us: this request may or may not have committed
            j += 1

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        admin = bearer(await client_token(scaikey, ADMIN))
        await grant(client, admin, [f"user:{USER}"], pattern="crash/**", name="crash-burst")
        tasks = [asyncio.create_task(writer(client, w)) for w in range(WRITERS)]
        deadline = asyncio.get_running_loop().time() + 60
        while len(acked_versions) < 80 or len(acked_deletes) < 20:
            assert asyncio.get_running_loop().time() < deadline, server.log_tail()
            assert not any(t.done() for t in tasks), server.log_tail()  # no writer failed before the kill
            await asyncio.sleep(0.02)
        server.handle.kill()  # SIGKILL mid-burst
        stop.set()
        await asyncio.gather(*tasks)

    conn = await asyncpg.connect(db_url)
    try:
        versions = {(r["path"], r["version"]) for r in await conn.fetch(
            "SELECT s.path, v.version FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
            " WHERE s.owner_id = $1", TENANT)}
        deleted = {r["path"] for r in await conn.fetch(
            "SELECT path FROM secrets WHERE owner_id = $1 AND deleted_at IS NOT NULL", TENANT)}
        audit = await conn.fetch(
            "SELECT action, secret_path, version FROM audit_log WHERE tenant_id = $1 AND success"
            " AND action IN ('write', 'delete') AND secret_path LIKE 'crash/%'", TENANT)
        events = await conn.fetch(
            "SELECT event_type, path, data FROM events WHERE tenant_id = $1 AND path LIKE 'crash/%'", TENANT)
    finally:
        await conn.close()

    # exact one-to-one: each version has one audit row and one event, and nothing else exists
    audited_writes = Counter((r["secret_path"], r["version"]) for r in audit if r["action"] == "write")
    audited_deletes = Counter(r["secret_path"] for r in audit if r["action"] == "delete")
    version_events: Counter[tuple[str, int]] = Counter()
    delete_events: Counter[str] = Counter()
    for e in events:
        data = orjson.loads(e["data"]) if isinstance(e["data"], str) else e["data"]
        if e["event_type"] == "secret.created":
            version_events[(e["path"], data["version"])] += 1
        elif e["event_type"] == "secret.updated":
            version_events[(e["path"], data["new_version"])] += 1
        else:
            assert e["event_type"] == "secret.deleted", e
            delete_events[e["path"]] += 1
    assert audited_writes == Counter(versions), "a version without its audit row, or an audit row without its version"
    assert version_events == Counter(versions), "a version without its outbox event, or an event without its version"
    assert audited_deletes == Counter(deleted), "a delete without its audit row, or the reverse"
    assert delete_events == Counter(deleted), "a delete without its secret.deleted event, or the reverse"

    # every acknowledged write is durable; only the requests in flight at the kill may be committed unacknowledged
    assert acked_versions <= versions
    assert acked_deletes <= deleted
    in_flight = len(versions - acked_versions) + len(deleted - acked_deletes)
    assert in_flight <= WRITERS, (in_flight, versions - acked_versions, deleted - acked_deletes)
    # the burst really interleaved writes and deletes (v1, v2 and deletes all present)
    assert {v for _, v in versions} == {1, 2}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


HOT_WRITERS = 24
SPREAD_WRITERS = 24
SPREAD_PATHS = 40


@pytest.mark.slow
async def test_sigkill_of_an_api_worker_during_group_committed_writes_loses_no_acknowledged_version(
        scaikey, settings_factory, api_server_factory, redis_clean, db_url):
    """The issue-13 load shape (many writers on one hot path plus writes spread over many paths) against two API
    worker processes, so writes share group-committed statements and the two processes race for the same rows;
    one worker is SIGKILLed mid-load and the other goes on. No version exists without its audit row and its
    outbox event, no acknowledged version is missing, each path's versions are contiguous from 1 (a statement
    commits whole or not at all) and its events are in version order."""
    await reset_emulator(scaikey)
    server = api_server_factory(settings_factory(rate_limit_enabled=False), workers=2)
    user = bearer(await user_token(scaikey, USER, scope=SCOPES, client_id="vault-ui"))
    acked: set[tuple[str, int]] = set()
    stop = asyncio.Event()

    async def writer(client: httpx.AsyncClient, paths: list[str], w: int) -> None:
        j = 0
        while not stop.is_set():
            path = paths[(w + j) % len(paths)]
            try:
                r = await client.put(f"/v1/secrets/{path}", json={"data": {"w": w, "j": j}}, headers=user)
            except httpx.HTTPError:
                return  # the server died under us
            if r.status_code // 100 != 2:
                return
            acked.add((path, r.json()["version"]))
            j += 1

    hot = ["crash/hot/secret"]
    spread = [f"crash/spread/s{i}" for i in range(SPREAD_PATHS)]
    async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                 limits=httpx.Limits(max_connections=HOT_WRITERS + SPREAD_WRITERS)) as client:
        admin = bearer(await client_token(scaikey, ADMIN))
        await grant(client, admin, [f"user:{USER}"], pattern="crash/**", name="crash-hot")
        for p in hot + spread:  # created up front: the load is appends, which the group commit takes
            assert (await client.put(f"/v1/secrets/{p}", json={"data": {"w": -1}}, headers=user)).status_code == 201
        tasks = [asyncio.create_task(writer(client, hot, w)) for w in range(HOT_WRITERS)]
        tasks += [asyncio.create_task(writer(client, spread, w)) for w in range(SPREAD_WRITERS)]
        deadline = asyncio.get_running_loop().time() + 60
        while sum(1 for p, _ in acked if p in hot) < 150 or len(acked) < 400:
            assert asyncio.get_running_loop().time() < deadline, server.log_tail()
            assert not any(t.done() for t in tasks), server.log_tail()
            await asyncio.sleep(0.01)
        workers = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        victim = max(workers, key=_rss_kb)  # an API worker (the smallest child is multiprocessing's tracker)
        os.kill(victim, signal.SIGKILL)  # mid-load; the other worker keeps serving
        survivors_from = len(acked)
        deadline = asyncio.get_running_loop().time() + 30
        while len(acked) < survivors_from + 100 and not all(t.done() for t in tasks):
            assert asyncio.get_running_loop().time() < deadline, server.log_tail()
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*tasks)
        assert len(acked) >= survivors_from + 100 or all(t.done() for t in tasks)

    conn = await asyncpg.connect(db_url)
    try:
        versions = {(r["path"], r["version"]) for r in await conn.fetch(
            "SELECT s.path, v.version FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
            " WHERE s.owner_id = $1 AND s.path LIKE 'crash/%'", TENANT)}
        audit = Counter((r["secret_path"], r["version"]) for r in await conn.fetch(
            "SELECT secret_path, version FROM audit_log WHERE tenant_id = $1 AND success AND action = 'write'"
            " AND secret_path LIKE 'crash/%'", TENANT))
        events = await conn.fetch(
            "SELECT event_type, path, data::text AS data FROM events WHERE tenant_id = $1 AND path LIKE 'crash/%'"
            " ORDER BY seq", TENANT)
    finally:
        await conn.close()

    event_versions: Counter[tuple[str, int]] = Counter()
    last_seen: dict[str, int] = {}
    for e in events:
        data = orjson.loads(e["data"])
        v = data["version"] if e["event_type"] == "secret.created" else data["new_version"]
        event_versions[(e["path"], v)] += 1
        assert v > last_seen.get(e["path"], 0), "a path's events are in version order"
        last_seen[e["path"]] = v
    assert audit == Counter(versions), "a version without its audit row, or the reverse"
    assert event_versions == Counter(versions), "a version without its outbox event, or the reverse"
    assert acked <= versions, "an acknowledged write is missing"
    for p in hot + spread:
        mine = sorted(v for q, v in versions if q == p)
        assert mine == list(range(1, len(mine) + 1)), f"{p}: versions not contiguous"
    unacked = versions - acked - {(p, 1) for p in hot + spread}
    assert len(unacked) <= HOT_WRITERS + SPREAD_WRITERS, "only requests in flight at the kill may be unacknowledged"
