"""The housekeeping workflow survives its worker being SIGKILLed mid-run (real Temporal dev server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType

from worker.client import connect
from worker.registry import HOUSEKEEPING
from workflows.types.housekeeping import HousekeepingInput, HousekeepingResult

pytestmark = pytest.mark.slow
ROWS = 1500


async def _seed_old_dispatched_events(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        old = datetime.now(UTC) - timedelta(days=30)
        await conn.copy_records_to_table(
            "events", columns=["event_id", "event_type", "tenant_id", "data", "created_at", "dispatched_at"],
            records=[(f"evt_old{i:05d}", "secret.updated", "tnt_x", "{}", old, old) for i in range(ROWS)],
        )
        await conn.execute("INSERT INTO events (event_id, event_type, tenant_id) VALUES ('evt_fresh', 'secret.created', 'tnt_x')")
    finally:
        await conn.close()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE event_id LIKE 'evt_old%'"))
    finally:
        await conn.close()


async def test_workflow_finishes_after_its_worker_is_killed(settings_factory, worker_process):
    settings = settings_factory(housekeeping_batch_size=50, housekeeping_batch_pause_ms=200)
    await _seed_old_dispatched_events(settings.asyncpg_dsn)
    first = worker_process(settings)
    client = await connect(settings)
    handle = await client.start_workflow(
        "Housekeeping",
        HousekeepingInput(steps=["prune_dispatched_events"], heartbeat_timeout_seconds=3),
        id=f"{settings.temporal_task_queue_prefix}housekeeping-durability",
        task_queue=settings.task_queue(HOUSEKEEPING),
        result_type=HousekeepingResult,
    )
    deadline = asyncio.get_running_loop().time() + 60
    while await _count(settings.asyncpg_dsn) > ROWS - 200:  # wait for real progress, then kill mid-step
        assert asyncio.get_running_loop().time() < deadline, "the housekeeping step never made progress"
        await asyncio.sleep(0.05)
    first.kill()
    assert not first.alive()
    remaining = await _count(settings.asyncpg_dsn)
    assert 0 < remaining < ROWS, "the kill must land mid-run"
    # (no sleep to "prove" nothing runs without a worker: the process is gone; what matters is below, that the
    # new worker finishes the same workflow run, the step retried, and deletes exactly the old rows)

    worker_process(settings)  # a fresh worker process picks the activity up after the heartbeat timeout
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert [r.step for r in result.results] == ["prune_dispatched_events"]
    assert await _count(settings.asyncpg_dsn) == 0
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:  # retention keeps what is not old and dispatched
        assert await conn.fetchval("SELECT count(*) FROM events WHERE event_id = 'evt_fresh'") == 1
    finally:
        await conn.close()
    attempts = [e.activity_task_started_event_attributes.attempt async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    # one activity (history records its last start); it completed on a retry, i.e. on the new worker
    assert len(attempts) == 1 and attempts[0] >= 2, attempts


async def test_worker_creates_the_housekeeping_schedule(settings_factory, worker_process):
    settings = settings_factory()
    worker_process(settings)
    client = await connect(settings)
    desc = await client.get_schedule_handle(f"{settings.temporal_task_queue_prefix}housekeeping").describe()
    assert desc.schedule.action.workflow == "Housekeeping"
    await client.get_schedule_handle(f"{settings.temporal_task_queue_prefix}housekeeping").delete()
