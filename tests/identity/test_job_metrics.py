"""Background-job metrics (issue 20): every activity run is counted by task and outcome with its duration, the
API's /metrics carries queue depths and the JWKS refresh counter, and the worker serves /metrics itself."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import REGISTRY

from devstack import services as svc
from tests.helpers import ADMIN, TENANT


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_sync_run_is_counted_and_timed_and_metrics_expose_depths(identity_stack):
    before = _value("worker_scheduler_runs_total", task="identity.run_sync", outcome="success")
    count_before = _value("worker_scheduler_run_duration_seconds_count", task="identity.run_sync")
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        done = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert done["status"] == "succeeded", done
        r = await stack.api.get("/v1/metrics")
        assert r.status_code == 200
        text = r.text
    assert _value("worker_scheduler_runs_total", task="identity.run_sync", outcome="success") == before + 1
    assert _value("worker_scheduler_run_duration_seconds_count", task="identity.run_sync") == count_before + 1
    assert 'scaivault_queue_depth{queue="outbox_backlog"}' in text
    assert 'scaivault_queue_depth{queue="webhook_deliveries_pending"}' in text
    for queue in ("leases_pending_revocation", "leases_revocation_failed", "acme_orders_pending"):
        assert f'scaivault_queue_depth{{queue="{queue}"}} 0.0' in text, queue
    assert "scaivault_webhook_queue_depth " in text and "scaivault_outbox_oldest_age_seconds " in text
    assert "scaivault_db_latency_seconds_count" in text and "scaivault_redis_latency_seconds_count" in text
    assert 'scaivault_jwks_refreshes_total{result="ok"}' in text  # the token's verification fetched the JWKS
    age = [line for line in text.splitlines() if line.startswith("scaivault_identity_sync_age_seconds ")]
    assert age and 0 <= float(age[0].split()[1]) < 600, age  # the sync just succeeded


async def test_failed_run_is_counted_as_failure():
    from temporalio.worker import ExecuteActivityInput

    from worker.interceptors import MetricsInterceptor, job_task

    class Boom:
        async def execute_activity(self, input):
            raise RuntimeError("boom")

    assert job_task("housekeeping.run_step", [type("S", (), {"step": "purge_events"})()]) == \
        "housekeeping.run_step:purge_events"
    import temporalio.activity as act

    class Info:
        activity_type = "test.boom"

    inbound = MetricsInterceptor().intercept_activity(Boom())  # type: ignore[arg-type]
    before = _value("worker_scheduler_runs_total", task="test.boom", outcome="failure")
    orig_info, orig_cancelled = act.info, act.is_cancelled
    act.info, act.is_cancelled = (lambda: Info()), (lambda: False)  # type: ignore[assignment]
    try:
        inp = ExecuteActivityInput(fn=lambda: None, args=[], executor=None, headers={})
        try:
            await inbound.execute_activity(inp)
        except RuntimeError:
            pass
    finally:
        act.info, act.is_cancelled = orig_info, orig_cancelled
    assert _value("worker_scheduler_runs_total", task="test.boom", outcome="failure") == before + 1


async def test_worker_serves_metrics(settings):
    from db.engine import Database
    from worker import metrics_server

    port = svc.free_port()
    stop = asyncio.Event()
    db = Database(settings, pool_size=1, application_name="metrics-test")
    try:
        server = metrics_server.start(f"127.0.0.1:{port}", db, None, stop, interval=0.2)
        async with httpx.AsyncClient() as c:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                r = await c.get(f"http://127.0.0.1:{port}/metrics")
                if 'scaivault_queue_depth{queue="outbox_backlog"}' in r.text:
                    break
                assert asyncio.get_running_loop().time() < deadline, r.text[:500]
                await asyncio.sleep(0.2)
        assert "worker_scheduler_runs_total" in r.text or "worker_scheduler_run_duration_seconds" in r.text
        assert server is not None
    finally:
        stop.set()
        await asyncio.sleep(0.3)
        await db.dispose()
    assert metrics_server.start("", db, None, stop) is None
