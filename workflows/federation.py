"""Federation sync as one durable entity per sync-mode backend: ``federation-sync/<tenant>/<backend>``.

It runs a sync every ``interval_seconds`` and at once on the ``force_sync`` signal; signals that arrive while a run
is in progress coalesce into one next run. The ``federation_sync.run`` activity heartbeats its progress, so a
worker killed mid-sync resumes on another worker after the heartbeat timeout. A failed run (outage, throttling)
waits a back-off (doubling, capped at the interval) unless a forced sync arrives. The run reports the backend's
current interval (a PATCH takes effect on the next wait); a deleted or proxy-mode backend ends the entity. It
continues-as-new when Temporal suggests it (or every 500 runs), after every handler has finished.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.federation import FederationActivities
    from workflows.types.federation import SYNC_WORKFLOW, ForceSync, SyncInput, SyncState

_CONTINUE_EVERY = 500


def _reason(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause) or type(cause).__name__


@workflow.defn(name=SYNC_WORKFLOW)
class FederationSyncWorkflow:
    @workflow.init
    def __init__(self, state: SyncState) -> None:
        self.state = state  # set before a signal-with-start's signal is applied

    @workflow.run
    async def run(self, state: SyncState) -> None:
        state = self.state
        first = state.runs == 0
        while True:
            if not first and not state.pending:
                wait = state.interval_seconds
                if state.failures_in_row:
                    wait = min(wait, 5 * 2 ** min(state.failures_in_row - 1, 10))
                try:
                    await workflow.wait_condition(lambda: state.pending > 0, timeout=timedelta(seconds=wait))
                except TimeoutError:
                    pass
            trigger = "manual" if state.pending else ("initial" if first else "schedule")
            first = False
            state.pending = 0
            if not await self._sync(trigger):
                return  # the backend is gone (deleted, or no longer in sync mode)
            state.runs_since_continue += 1
            if workflow.info().is_continue_as_new_suggested() or state.runs_since_continue >= _CONTINUE_EVERY:
                await workflow.wait_condition(workflow.all_handlers_finished)
                state.runs_since_continue = 0
                workflow.continue_as_new(state)

    async def _sync(self, trigger: str) -> bool:
        state = self.state
        state.running = True
        try:
            result = await workflow.execute_activity_method(
                FederationActivities.run_sync,
                SyncInput(tenant_id=state.tenant_id, backend_id=state.backend_id, trigger=trigger),
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=state.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                         maximum_interval=timedelta(minutes=1), maximum_attempts=10),
            )
        except ActivityError as exc:
            state.last_status, state.last_error = "failed", _reason(exc)
            state.failures_in_row += 1
            return True
        finally:
            state.running = False
        state.runs += 1
        state.last_status, state.last_error = result.status, result.error
        if result.status == "gone":
            return False
        if result.interval_seconds:
            state.interval_seconds = result.interval_seconds
        state.failures_in_row = state.failures_in_row + 1 if result.status == "failed" else 0
        return True

    @workflow.signal(name="force_sync")
    def force_sync(self, req: ForceSync) -> None:
        self.state.pending += 1

    @workflow.query(name="status")
    def status(self) -> SyncState:
        return self.state
