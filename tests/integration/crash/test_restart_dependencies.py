"""Restart PostgreSQL and the Temporal dev server under load; the stack recovers with no manual step.

The test starts its own PostgreSQL and Temporal (devstack.services, free ports, state on disk) so it can stop
and restart them by their own pid without disturbing the session's servers. A real API process and worker
run against them while clients PUT secrets without pause and a webhook receives every ``secret.*`` event:

* PostgreSQL stopped: writes fail with 503 in the error envelope (never a 5xx other than 503, never a hang);
  once it is back the same API process serves them again;
* Temporal stopped: writes keep succeeding (the outbox needs only PostgreSQL); once it is back the same
  worker reconnects and the relay delivers everything that piled up;
* afterwards every acknowledged write is stored with its audit row and outbox event, and each secret event
  has exactly one delivery row, ``success``, and reached the receiver (at least once: a POST whose
  completion Temporal could not record is legitimately sent again with the same event id).
"""

from __future__ import annotations

import asyncio
import secrets as pysecrets
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from clients.webhook_verify import EVENT_ID_HEADER
from db.migrate import upgrade_to_head
from devstack import services as svc
from tests.helpers import ADMIN, TENANT, bearer, client_token, grant, reset_emulator, user_token
from tests.webhook_receiver import wait_for

WRITERS = 6
CLEAN_503 = {(503, "service_unavailable"), (503, "audit_unavailable")}
USER = "alice@acme.example"
SCOPES = "secrets:read secrets:write secrets:list"


@pytest.fixture
def own_servers(services: Any) -> Any:
    """A private PostgreSQL and Temporal; the test may stop/restart them. Stopped by pid afterwards."""
    base: Path = services.tmp_dir / f"restart-{pysecrets.token_hex(3)}"
    handles: dict[str, Any] = {}
    pg_port, temporal_port = svc.free_port(), svc.free_port()

    def start_pg() -> svc.Handle:
        handles["pg"] = svc.start_postgres(base / "pg", pg_port, database="scaivault")
        return handles["pg"]

    def start_temporal() -> svc.Handle:
        handles["temporal"] = svc.start_temporal(base / "temporal", temporal_port)
        return handles["temporal"]

    yield start_pg, start_temporal
    svc.stop_all([h for h in handles.values()], timeout=10)


class Load:
    """Writers that PUT a new secret path per request, without pause, recording every outcome."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.acked: set[tuple[str, int]] = set()
        self.failures: list[tuple[int, str]] = []  # (status, error code)
        self.transport_errors: list[str] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, client: httpx.AsyncClient) -> None:
        self.tasks = [asyncio.create_task(self._writer(client, w)) for w in range(WRITERS)]

    async def _writer(self, client: httpx.AsyncClient, w: int) -> None:
        j = 0
        while not self.stop.is_set():
            path = f"load/w{w}/s{j}"
            j += 1
            try:
                r = await client.put(f"/v1/secrets/{path}", json={"data": {"j": j}}, headers=self.headers)
            except httpx.HTTPError as exc:
                self.transport_errors.append(repr(exc))
                continue
            if r.status_code == 201 or r.status_code == 200:
                self.acked.add((path, r.json()["version"]))
            else:
                self.failures.append((r.status_code, r.json()["error"]["code"]))
                await asyncio.sleep(0.05)  # a client backing off on 503

    async def wait_acked(self, more: int, what: str, timeout: float = 60) -> None:
        target = len(self.acked) + more
        await wait_for(lambda: len(self.acked) >= target, timeout=timeout, what=what)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


@pytest.mark.slow
async def test_postgres_and_temporal_restart_under_load(scaikey, own_servers, event_settings, api_server_factory,
                                                        worker_process, receiver_factory, hook_secret, redis_clean):
    await reset_emulator(scaikey)
    start_pg, start_temporal = own_servers
    pg = start_pg()
    temporal = start_temporal()
    await asyncio.to_thread(upgrade_to_head, pg.url)
    settings = event_settings(database_url=pg.url, temporal_address=temporal.address, rate_limit_enabled=False)
    api = api_server_factory(settings)
    worker = worker_process(settings)
    rx = receiver_factory([hook_secret])
    user = bearer(await user_token(scaikey, USER, scope=SCOPES, client_id="vault-ui"))

    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        admin = bearer(await client_token(scaikey, ADMIN))
        await grant(client, admin, [f"user:{USER}"], pattern="load/**", name="restart-load")
        r = await client.post("/v1/webhooks", headers=admin, json={
            "name": "restart", "url": rx.url, "secret": hook_secret, "events": ["secret.*"]})
        assert r.status_code == 201, r.text
        hook_id = r.json()["id"]
        load = Load(api.url, user)
        load.start(client)
        await load.wait_acked(20, "writes before the restarts")

        # --- PostgreSQL down: clean 503s; back: the same API process serves again
        pg.stop()
        await wait_for(lambda: len(load.failures) >= 5, timeout=60, what="writes refused while PostgreSQL is down")
        pg = start_pg()
        await load.wait_acked(20, "writes after PostgreSQL is back", timeout=90)

        # --- Temporal down: writes still succeed; back: the same worker reconnects
        temporal.stop()
        await load.wait_acked(20, "writes while Temporal is down")
        temporal = start_temporal()
        await load.wait_acked(20, "writes after Temporal is back")
        await load.finish()

    assert api.handle.alive() and worker.alive(), "no process was restarted by hand"
    assert load.transport_errors == []  # the API answered every request
    assert load.failures, "PostgreSQL's outage was never observed"
    # a lost or refused database connection is 503 service_unavailable (or audit_unavailable when its failure
    # could not be audited either), never a 500, and never an unhandled error in the log
    crashes = [line.replace("\\n", "\n")[-3000:] for line in api.log_tail(20000).splitlines()
               if '"unhandled error"' in line]
    assert all(f in CLEAN_503 for f in load.failures), (Counter(load.failures), crashes[:1])
    assert crashes == [], crashes[:1]

    conn = await asyncpg.connect(pg.url)
    try:
        versions = {(r["path"], r["version"]) for r in await conn.fetch(
            "SELECT s.path, v.version FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
            " WHERE s.owner_id = $1 AND s.path LIKE 'load/%'", TENANT)}
        audited = Counter((r["secret_path"], r["version"]) for r in await conn.fetch(
            "SELECT secret_path, version FROM audit_log WHERE tenant_id = $1 AND action = 'write' AND success"
            " AND secret_path LIKE 'load/%'", TENANT))
        events = {r["event_id"]: r["path"] for r in await conn.fetch(
            "SELECT event_id, path FROM events WHERE tenant_id = $1 AND event_type = 'secret.created'"
            " AND path LIKE 'load/%'", TENANT)}
    finally:
        await conn.close()
    assert load.acked <= versions  # nothing acknowledged was lost
    assert len(versions - load.acked) <= WRITERS  # only requests cut off by the outage may commit unacknowledged
    assert audited == Counter(versions)
    assert Counter(events.values()) == Counter(p for p, _ in versions)

    async def delivered() -> bool:
        rows = await _fetch(pg.url, "SELECT event_id, status FROM webhook_deliveries WHERE webhook_id = $1", hook_id)
        return len(rows) >= len(events) and all(r["status"] == "success" for r in rows)

    try:
        await wait_for(delivered, timeout=120, interval=0.5, what="every pending event delivered after the restarts")
    except AssertionError as exc:
        statuses = await _fetch(pg.url, "SELECT status, count(*) AS n FROM webhook_deliveries WHERE webhook_id = $1"
                                " GROUP BY status", hook_id)
        pending = await _fetch(pg.url, "SELECT count(*) AS n FROM events WHERE dispatched_at IS NULL")
        raise AssertionError(f"{exc}: events {len(events)}, deliveries {[tuple(r) for r in statuses]}, undispatched"
                             f" {pending[0]['n']}\n--- worker ---\n{worker.log_tail(60)}") from None
    rows = await _fetch(pg.url, "SELECT event_id, status, attempts FROM webhook_deliveries WHERE webhook_id = $1",
                        hook_id)
    assert sorted(r["event_id"] for r in rows) == sorted(events)  # exactly one delivery row per event
    received = Counter(r.headers[EVENT_ID_HEADER] for r in rx.snapshot() if r.status == 200)
    assert set(received) == set(events)  # every event reached the receiver, no foreign one did
    assert all(r.verified for r in rx.snapshot())



async def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
