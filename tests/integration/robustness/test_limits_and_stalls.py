"""Issue 12 items 5, 8, 9, 10: request-body caps, the identity-sync schedule, a stalled Redis (circuit breaker)
and a stalled Temporal (short deadlines, 503 naming Temporal), all through a real uvicorn server.

Stalls are SIGSTOPs of a Redis / Temporal dev server this test starts itself (never the session's), resumed
with SIGCONT in a ``finally``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest

from devstack import services as svc
from tests.helpers import ADMIN, CI, bearer, client_token, grant, reset_emulator
from tests.integration.events.conftest import (  # noqa: F401 - pytest fixtures, registered by import
    event_settings,
    hook_secret,
    receiver_factory,
    stack_factory,
)

pytestmark = pytest.mark.asyncio

SECRET_CAP = 2048
DEFAULT_CAP = 4096
WEBHOOK_SECRET = "whsec_robustness_tests_0123456789abcdef"


async def _raw_request(url: str, head: str, body: bytes = b"", timeout: float = 15.0) -> tuple[int, dict[str, str],
                                                                                                 bytes]:
    """Send ``head`` (request line + headers, CRLF-separated, no blank line) and ``body`` on a raw socket and read
    one response. Used where the test must control exactly which bytes are sent (e.g. a Content-Length whose
    body never comes)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + b"\r\n\r\n" + body)
        await writer.drain()
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        payload = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
        return status, headers, payload
    finally:
        writer.close()


def _error(payload: bytes) -> dict[str, Any]:
    return dict(orjson.loads(payload)["error"])


# ============================================================================================ item 5: body caps


@pytest.fixture
def capped_api(settings_factory: Callable[..., Any], api_server_factory: Callable[..., Any], scaikey: str) -> Any:
    return api_server_factory(settings_factory(max_request_body_bytes=DEFAULT_CAP, max_secret_body_bytes=SECRET_CAP,
                                               scaikey_webhook_secret=WEBHOOK_SECRET))


async def test_content_length_over_the_route_cap_is_refused_before_the_body_is_sent(capped_api: Any) -> None:
    # The declared length is far above the cap and no body byte is ever sent: the 413 can only come from the
    # headers (old code: the handler waits for the body until the socket times out).
    status, headers, payload = await _raw_request(
        capped_api.url, "PUT /v1/secrets/app/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 100000000")
    assert status == 413
    err = _error(payload)
    assert err["code"] == "payload_too_large" and err["details"] == {"limit": SECRET_CAP}
    assert err["request_id"] == headers["x-request-id"]
    assert headers.get("connection") == "close"
    # Per route: the same declared size under the default cap but over the secrets cap.
    status, _, payload = await _raw_request(
        capped_api.url, f"PUT /v1/secrets/app/big HTTP/1.1\r\nHost: x\r\nContent-Length: {SECRET_CAP + 1}")
    assert status == 413 and _error(payload)["details"] == {"limit": SECRET_CAP}
    status, _, payload = await _raw_request(
        capped_api.url, f"POST /v1/policies HTTP/1.1\r\nHost: x\r\nContent-Length: {DEFAULT_CAP + 1}")
    assert status == 413 and _error(payload)["details"] == {"limit": DEFAULT_CAP}
    # Tenant-prefixed paths get the same cap.
    status, _, payload = await _raw_request(
        capped_api.url, "PUT /v1/t/tnt_acme_prod/secrets/app/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000")
    assert status == 413 and _error(payload)["details"] == {"limit": SECRET_CAP}


async def _chunks(total: int, size: int = 512) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


async def test_chunked_bodies_without_content_length_are_counted_as_they_stream(capped_api: Any) -> None:
    token = await client_token(capped_api.settings.scaikey_base_url, CI)
    admin = bearer(await client_token(capped_api.settings.scaikey_base_url, ADMIN))
    async with httpx.AsyncClient(base_url=capped_api.url, timeout=30) as c:
        await grant(c, admin, ["sa:ci-deployer"], pattern="robust/**")
        # Under the secrets cap, streamed (chunked): accepted as usual.
        small = orjson.dumps({"data": {"v": "x" * 100}})

        async def one(b: bytes) -> AsyncIterator[bytes]:
            yield b

        r = await c.put("/v1/secrets/robust/chunked", content=one(small), headers=bearer(token))
        assert r.status_code == 201, r.text
        assert "content-length" not in {k.lower() for k in r.request.headers}
        # Over the secrets cap (but under the default cap), streamed: 413 once the count crosses the cap.
        r = await c.put("/v1/secrets/robust/chunked", content=_chunks(SECRET_CAP + 1024), headers=bearer(token))
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
        assert r.json()["error"]["details"] == {"limit": SECRET_CAP}
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
        # The webhook receiver (default cap) with a signature header reads its body: a streamed body over the
        # cap is refused with 413 (old code read all of it, then answered 401 for the bad signature).
        r = await c.post("/v1/identity/webhooks/scaikey", content=_chunks(DEFAULT_CAP + 2048),
                         headers={"X-ScaiKey-Signature": "t=1,v1=00", "Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["details"] == {"limit": DEFAULT_CAP}
        # The secret was not changed by the refused write.
        r = await c.get("/v1/secrets/robust/chunked", headers=bearer(token))
        assert r.status_code == 200 and r.json()["data"] == {"v": "x" * 100}


async def test_webhook_receiver_refuses_an_unsigned_delivery_before_reading_its_body(capped_api: Any) -> None:
    # Content-Length under the cap, no signature header, and the body never sent: the 401 must come from the
    # headers alone (old code read the body first and waited for it until the socket timed out).
    status, headers, payload = await _raw_request(
        capped_api.url, "POST /v1/identity/webhooks/scaikey HTTP/1.1\r\nHost: x\r\n"
                        "Content-Type: application/json\r\nContent-Length: 500")
    assert status == 401
    assert _error(payload)["code"] == "invalid_signature"
    assert _error(payload)["request_id"] == headers["x-request-id"]


# ============================================================================================ item 9: stalled Redis


@contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` (a server this test started) and always SIGCONT it again."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_stalled_redis_opens_the_breaker_and_reads_stop_waiting_for_it(
        scaikey: str, settings_factory: Callable[..., Any], api_server_factory: Callable[..., Any],
        tmp_path: Any) -> None:
    import redis.asyncio as aioredis

    redis = svc.start_redis(tmp_path / "redis", svc.free_port())
    try:
        settings = settings_factory(redis_url=redis.url, audit_seal_interval_seconds=0,
                                    rate_limit_overrides="read_secrets=100000,write_secrets=10000")
        api = api_server_factory(settings)
        ci = bearer(await client_token(scaikey, CI))
        admin = bearer(await client_token(scaikey, ADMIN))
        gen_key = "sv:secgen:tenant:tnt_acme_prod"
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c, \
                aioredis.Redis.from_url(redis.url) as direct:
            await grant(c, admin, ["sa:ci-deployer"], pattern="stall/**")
            r = await c.put("/v1/secrets/stall/db", json={"data": {"v": "1"}}, headers=ci)
            assert r.status_code == 201, r.text

            async def breaker() -> dict[str, Any]:
                r = await c.get("/v1/health/detailed", headers=admin)
                assert r.status_code == 200, r.text
                return dict(r.json()["checks"]["redis_breaker"])

            async def read(expected: str) -> None:
                r = await c.get("/v1/secrets/stall/db", headers=ci)
                assert r.status_code == 200, r.text
                assert r.json()["data"] == {"v": expected}

            await read("1")
            assert (await breaker())["state"] == "closed"
            gen_before = int(await direct.get(gen_key) or 0)

            with _stopped(redis.pid):
                async def opened() -> dict[str, Any] | None:
                    await asyncio.gather(*(read("1") for _ in range(4)))  # every read still answers 200
                    b = await breaker()
                    return b if b["state"] == "open" else None

                snap = await _until(opened, "the Redis breaker to open")
                assert snap["status"] == "degraded"
                health = (await c.get("/v1/health/detailed", headers=admin)).json()
                assert health["checks"]["rate_limiter"]["mode"] == "in_memory_fallback"
                assert health["status"] == "degraded"
                failures = snap["calls"]["failure"]
                short = snap["calls"]["short_circuited"]
                # While open, reads (and a write) are served without touching Redis: no call through the
                # breaker fails any more (nothing waited for the Redis timeout); each one was short-circuited.
                r = await c.put("/v1/secrets/stall/db", json={"data": {"v": "2"}}, headers=ci)
                assert r.status_code == 200, r.text
                await asyncio.gather(*(read("2") for _ in range(20)))  # read-after-write: the row cache is bypassed
                later = await breaker()
                assert later["state"] == "open"
                assert later["calls"]["failure"] == failures
                assert later["calls"]["short_circuited"] >= short + 20

            async def closed() -> dict[str, Any] | None:
                b = await breaker()
                return b if b["state"] == "closed" else None

            await _until(closed, "the Redis breaker to close after SIGCONT")
            health = (await c.get("/v1/health/detailed", headers=admin)).json()
            assert health["checks"]["rate_limiter"]["mode"] == "redis"
            await read("2")
            # The generation bump the write could not send during the stall was sent once Redis was back, so
            # other processes' rows cached before the stall are invalidated.
            assert int(await direct.get(gen_key) or 0) > gen_before
            assert (await breaker())["calls"]["success"] > later["calls"]["success"]
    finally:
        redis.stop()


# ============================================================================================ item 8: sync schedule


async def _platform_admin(scaikey: str, client_secret: str) -> dict[str, str]:
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/api/v1/platform/oauth/token", data={"grant_type": "client_credentials"},
                         auth=("scaivault", client_secret))
    assert r.status_code == 200, r.text
    return bearer(str(r.json()["access_token"]))


async def _entity_running(client: Any, settings: Any, tenant_id: str) -> bool:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from services.identity.cache import sync_workflow_id

    try:
        desc = await client.get_workflow_handle(sync_workflow_id(settings, tenant_id)).describe()
    except RPCError:
        return False
    return bool(desc.status == WorkflowExecutionStatus.RUNNING)


async def test_identity_sync_schedule_starts_every_tenant_entity_and_discovers_new_tenants(
        scaikey: str, scaikey_client_secret: str, settings_factory: Callable[..., Any],
        worker_process: Callable[..., Any], api_server_factory: Callable[..., Any]) -> None:
    from services.identity.cache import sync_workflow_id
    from worker.client import connect
    from worker.schedules import identity_requeue_schedule_id, identity_sync_schedule_id

    await reset_emulator(scaikey)
    settings = settings_factory(identity_sync_interval_minutes=0.1, identity_sync_initial_sweep=True,
                                identity_sync_heartbeat_seconds=5, audit_seal_interval_seconds=0)
    client = await connect(settings)
    try:
        api = api_server_factory(settings)
        worker_process(settings)  # creates the Schedules; nobody calls POST /v1/identity/sync in this test
        for tid in ("tnt_acme_prod", "tnt_acme_dev"):
            await _until(lambda tid=tid: _entity_running(client, settings, tid), f"entity {tid} running")
        desc = await client.get_schedule_handle(identity_sync_schedule_id(settings)).describe()
        assert desc.schedule.spec.intervals[0].every.total_seconds() == 6
        # The sync ran on its own: the tenant admin sees a scheduled run in the sync history (over HTTP).
        admin = bearer(await client_token(scaikey, ADMIN))
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            async def scheduled_run() -> bool:
                r = await c.get("/v1/identity/sync/history", params={"tenant_id": "tnt_acme_prod"}, headers=admin)
                assert r.status_code == 200, r.text
                return any(s["trigger"] == "schedule" and s["status"] == "succeeded" for s in r.json()["syncs"])

            await _until(scheduled_run, "a scheduled sync of tnt_acme_prod")

        # A tenant added in ScaiKey gets its entity at the next scheduled sweep, without any manual call.
        async with httpx.AsyncClient(base_url=scaikey) as sk:
            r = await sk.post("/api/v1/admin/tenants", headers=await _platform_admin(scaikey, scaikey_client_secret),
                              json={"id": "tnt_robust_new", "slug": "robust-new", "partner_id": "prt_acme"})
            assert r.status_code == 201, r.text
        await _until(lambda: _entity_running(client, settings, "tnt_robust_new"), "entity for the new tenant")
        handle = client.get_workflow_handle(sync_workflow_id(settings, "tnt_robust_new"))

        async def synced() -> bool:
            from workflows.types.identity import SyncState

            state = await handle.query("status", result_type=SyncState)
            return state.last_status == "succeeded"

        await _until(synced, "the new tenant's first sync")
        # Idempotent at worker start: a second worker updates the existing Schedules instead of failing.
        worker_process(settings)
        await client.get_schedule_handle(identity_sync_schedule_id(settings)).describe()
    finally:
        for sid in (identity_sync_schedule_id(settings), identity_requeue_schedule_id(settings)):
            try:
                await client.get_schedule_handle(sid).delete()
            except Exception:
                pass
        await reset_emulator(scaikey)


# ============================================================================================ item 10: stalled Temporal


async def test_stalled_temporal_answers_503_fast_and_the_stored_request_runs_once_it_is_back(
        scaikey: str, settings_factory: Callable[..., Any], api_server_factory: Callable[..., Any],
        worker_process: Callable[..., Any], tmp_path: Any) -> None:
    await reset_emulator(scaikey)
    temporal = svc.start_temporal(tmp_path / "temporal", svc.free_port())
    try:
        settings = settings_factory(temporal_address=temporal.address, temporal_rpc_timeout_seconds=3,
                                    identity_sync_requeue_seconds=2, identity_sync_heartbeat_seconds=5,
                                    audit_seal_interval_seconds=0, scaikey_webhook_secret=WEBHOOK_SECRET)
        api = api_server_factory(settings)
        worker_process(settings)
        admin = bearer(await client_token(scaikey, ADMIN))
        ci = bearer(await client_token(scaikey, CI))
        # Generous client timeout: the old code hung for more than 20 s here.
        async with httpx.AsyncClient(base_url=api.url, timeout=20) as c:
            await grant(c, admin, ["sa:ci-deployer"], pattern="tstall/**")
            async def finished(sync_id: str) -> dict[str, Any] | None:
                r = await c.get(f"/v1/identity/sync/{sync_id}", headers=admin)
                assert r.status_code == 200, r.text
                body = dict(r.json())
                return body if body["status"] in ("succeeded", "failed", "skipped") else None

            r = await c.post("/v1/identity/sync", params={"tenant_id": "tnt_acme_prod"}, headers=admin)
            assert r.status_code == 202, r.text  # Temporal answers: accepted as usual
            first = r.json()["sync_id"]
            await _until(lambda: finished(first), "the first sync")
            with _stopped(temporal.pid):
                r = await c.post("/v1/identity/sync", params={"tenant_id": "tnt_acme_prod"}, headers=admin)
                assert r.status_code == 503, r.text
                err = r.json()["error"]
                assert err["code"] == "service_unavailable" and "Temporal" in err["message"]
                assert err["details"] == {"dependency": "temporal", "action": "identity_sync.signal_with_start"}
                assert r.headers["retry-after"] == "5"
                # A partner-wide sweep request too (start_workflow of the sweep).
                r = await c.post("/v1/identity/sync", params={"partner_id": "prt_acme"}, headers=admin)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["details"]["action"] == "identity_sync.start_sweep"
                # The ScaiKey webhook receiver stores the event and answers; its resync signal is bounded too.
                raw = orjson.dumps({"event_id": "evt_robust_stall", "event_type": "user.updated",
                                    "tenant_id": "tnt_acme_prod", "data": {}})
                ts = int(time.time())
                sig = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
                r = await c.post("/v1/identity/webhooks/scaikey", content=raw,
                                 headers={"X-ScaiKey-Signature": f"t={ts},v1={sig}",
                                          "Content-Type": "application/json"})
                assert r.status_code == 200, r.text
                assert r.json()["handled"] is True
                # Secret writes and reads keep working without Temporal (the outbox holds their events).
                r = await c.put("/v1/secrets/tstall/x", json={"data": {"v": "1"}}, headers=ci)
                assert r.status_code == 201, r.text
                assert (await c.get("/v1/secrets/tstall/x", headers=ci)).status_code == 200
                # The refused request's sync record was kept, pending.
                r = await c.get("/v1/identity/sync/history", params={"tenant_id": "tnt_acme_prod"}, headers=admin)
                pending = [s for s in r.json()["syncs"] if s["status"] == "pending"]
                assert len(pending) == 1, r.json()
                stranded = pending[0]["sync_id"]

            # Once Temporal is back, the requeue Schedule dispatches the stored request; nobody retries it.
            result = await _until(lambda: finished(stranded), "the stranded sync to run after SIGCONT", timeout=120)
            assert result["status"] == "succeeded", result
            assert result["tenants"][0]["trigger"] == "manual"
    finally:
        temporal.stop()


async def test_stalled_temporal_redeliver_answers_503_and_the_redelivery_runs_once_it_is_back(
        stack_factory: Callable[..., Any],  # noqa: F811 - the fixtures imported above
        receiver_factory: Callable[..., Any],  # noqa: F811
        hook_secret: str,  # noqa: F811
        worker_process: Callable[..., Any], tmp_path: Any) -> None:
    """POST .../redeliver within TEMPORAL_RPC_TIMEOUT_SECONDS while Temporal is stalled: 503 naming Temporal, the
    delivery stays re-opened, and the outbox relay's sweep starts the redelivery once Temporal answers again
    (nobody calls redeliver a second time)."""
    temporal = svc.start_temporal(tmp_path / "temporal", svc.free_port())
    try:
        stack = await stack_factory(temporal_address=temporal.address, temporal_rpc_timeout_seconds=3)
        rx = receiver_factory([hook_secret])
        hook = await stack.create_webhook(rx.url, hook_secret)
        worker_process(stack.settings)
        [event_id] = await stack.emit()

        async def delivery(status: str) -> dict[str, Any] | None:
            r = await stack.api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=stack.admin)
            assert r.status_code == 200, r.text
            rows = r.json()["deliveries"]
            assert len(rows) <= 1, rows  # one event, one webhook: one delivery row, ever
            return rows[0] if rows and rows[0]["status"] == status else None

        first = await _until(lambda: delivery("success"), "the first delivery")
        assert first["attempts"] == 1 and [h.status for h in rx.snapshot()] == [200]
        url = f"/v1/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver"
        with _stopped(temporal.pid):
            started = time.monotonic()
            r = await stack.api.post(url, headers=stack.admin)
            assert time.monotonic() - started < 15  # the 3 s deadline (+1 s), never a hang
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "service_unavailable" and "Temporal" in err["message"]
            assert err["details"] == {"dependency": "temporal", "action": "webhook.redeliver"}
            assert r.headers["retry-after"] == "5"
            assert await delivery("pending") is not None  # re-opened, kept for when Temporal is back
            assert len(rx.snapshot()) == 1

        # Temporal is back: the relay's sweep starts the stored redelivery; nobody repeats the request.
        done = await _until(lambda: delivery("success"), "the stranded redelivery after SIGCONT", timeout=120)
        assert done["id"] == first["id"] and done["attempts"] == 2
        assert [(h.status, h.event["event_id"]) for h in rx.snapshot()] == [(200, event_id), (200, event_id)]
        rows = await stack.sql("SELECT redeliver_requested_at FROM webhook_deliveries WHERE id = $1", first["id"])
        assert rows[0]["redeliver_requested_at"] is None
    finally:
        temporal.stop()
