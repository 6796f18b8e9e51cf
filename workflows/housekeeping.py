"""Housekeeping: a short workflow fired by the ``housekeeping`` Schedule. Each step is an idempotent sweep
activity that works in batches and heartbeats, so a worker dying mid-step costs one batch, not the run."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.housekeeping import HousekeepingActivities
    from workflows.types.housekeeping import HousekeepingInput, HousekeepingResult, StepInput, StepResult


@workflow.defn(name="Housekeeping")
class HousekeepingWorkflow:
    @workflow.run
    async def run(self, inp: HousekeepingInput) -> HousekeepingResult:
        steps = inp.steps or await workflow.execute_activity_method(
            HousekeepingActivities.list_steps, start_to_close_timeout=timedelta(seconds=30)
        )
        results: list[StepResult] = []
        for step in steps:
            res = await workflow.execute_activity_method(
                HousekeepingActivities.run_step,
                StepInput(step=step),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                                         maximum_attempts=10),
            )
            results.append(res)
        return HousekeepingResult(results=results)
