"""Idempotent create-or-update of the Temporal Schedules the platform relies on."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from core.settings import Settings
from worker.registry import HOUSEKEEPING
from workflows.types.housekeeping import HousekeepingInput

log = logging.getLogger("scaivault.worker")


def housekeeping_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}housekeeping"


def _housekeeping(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "Housekeeping",
            HousekeepingInput(),
            id=housekeeping_schedule_id(settings),
            task_queue=settings.task_queue(HOUSEKEEPING),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.housekeeping_interval_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedules(client: Client, settings: Settings) -> None:
    from services.event_relay import ensure_relay

    await ensure_relay(client, settings)
    sid = housekeeping_schedule_id(settings)
    schedule = _housekeeping(settings)
    try:
        await client.create_schedule(sid, schedule)
        log.info("created schedule", extra={"schedule_id": sid})
    except ScheduleAlreadyRunningError:
        async def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(update)
