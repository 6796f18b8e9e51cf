"""Housekeeping activities: run one registered sweeper in batches, heartbeating progress."""

from __future__ import annotations

import asyncio

from temporalio import activity

from core.settings import Settings
from db.engine import Database
from services import housekeeping
from workflows.types.housekeeping import StepInput, StepResult


class HousekeepingActivities:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    @activity.defn(name="housekeeping.list_steps")
    async def list_steps(self) -> list[str]:
        return sorted(housekeeping.load_all())

    @activity.defn(name="housekeeping.run_step")
    async def run_step(self, inp: StepInput) -> StepResult:
        sweepers = housekeeping.load_all()
        fn = sweepers.get(inp.step)
        if fn is None:
            from temporalio.exceptions import ApplicationError

            raise ApplicationError(f"unknown housekeeping step {inp.step!r}", type="invalid_config",
                                   non_retryable=True)
        limit = self.settings.housekeeping_batch_size
        pause = self.settings.housekeeping_batch_pause_ms / 1000
        prior = activity.info().heartbeat_details
        total, batches = (int(prior[0]), int(prior[1])) if prior else (0, 0)
        while True:
            async with self.db.raw() as conn:
                n = await fn(conn, self.settings, limit)
            total += n
            batches += 1
            activity.heartbeat(total, batches)
            if n < limit:
                break
            if pause:
                await asyncio.sleep(pause)
        activity.logger.info("housekeeping step done", extra={"step": inp.step, "processed": total})
        return StepResult(step=inp.step, processed=total, batches=batches)
