"""ScaiKey identity sync as durable Temporal workflows.

``ScaiKeySync`` (id ``<prefix>scaikey-sync/<tenant_id>``): one long-running entity per tenant. It syncs every
``interval_seconds``, and at once on the ``force_sync`` signal (API, webhook receiver, full sweep); signals that
arrive while a run is in progress are coalesced into the next run. Query ``status`` returns the state. It
continues-as-new when Temporal suggests it, after every handler has finished.

``ScaiKeySyncSweep`` (id ``<prefix>scaikey-sync-sweep/<sync_id>``): a short workflow for a full sync; one
activity mirrors partners/tenants and signals-with-start every tenant's entity.

``ScaiKeySyncScheduled``: what the identity-sync Schedules start (worker/schedules.py). It re-dispatches sync
requests stranded while Temporal was unavailable and, for the sweep schedule (every IDENTITY_SYNC_INTERVAL_MINUTES),
runs the sweep under a fresh sync id, so new ScaiKey tenants get their entity without any manual call.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.identity_sync import IdentitySyncActivities
    from workflows.types.identity import (
        SCHEDULED_WORKFLOW,
        SWEEP_WORKFLOW,
        SYNC_WORKFLOW,
        ForceSync,
        RecordFailureInput,
        RequeueInput,
        RunSyncInput,
        ScheduledSyncInput,
        ScheduledSyncResult,
        SweepInput,
        SweepResult,
        SyncState,
    )

_RECENT = 50


def _reason(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause) or type(cause).__name__


@workflow.defn(name=SYNC_WORKFLOW)
class ScaiKeySyncWorkflow:
    @workflow.init
    def __init__(self, state: SyncState) -> None:
        # Set before any signal is applied: signal-with-start delivers force_sync in the first activation.
        self.state = state

    @workflow.run
    async def run(self, state: SyncState) -> None:
        state = self.state
        first = state.runs == 0 and not state.pending
        while True:
            if not first and not state.pending:
                try:
                    await workflow.wait_condition(lambda: bool(state.pending),
                                                  timeout=timedelta(seconds=state.interval_seconds))
                except TimeoutError:
                    pass
            first = False
            batch, state.pending = list(state.pending), []
            if batch:
                trigger, reason = batch[0].trigger, "; ".join(sorted({r.reason for r in batch if r.reason}))
                sync_ids = [r.sync_id for r in batch]
            else:
                trigger, reason = ("initial" if state.runs == 0 else "schedule"), ""
                sync_ids = [f"sync_{workflow.uuid4().hex}"]
            await self._sync(RunSyncInput(tenant_id=state.tenant_id, sync_ids=sync_ids, trigger=trigger,
                                          reason=reason))
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(state)

    async def _sync(self, inp: RunSyncInput) -> None:
        state = self.state
        state.running = True
        state.last_started_at = workflow.now().isoformat().replace("+00:00", "Z")
        state.last_sync_id = inp.sync_ids[-1]
        try:
            result = await workflow.execute_activity_method(
                IdentitySyncActivities.run_sync, inp,
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=state.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                         maximum_interval=timedelta(minutes=1),
                                         maximum_attempts=max(1, state.retry_attempts)),
            )
            state.last_status, state.last_stats, state.last_error = result.status, result.stats, None
        except ActivityError as exc:
            state.last_status, state.last_error = "failed", _reason(exc)
            await workflow.execute_activity_method(
                IdentitySyncActivities.record_failure,
                RecordFailureInput(tenant_id=inp.tenant_id, sync_ids=inp.sync_ids, error=state.last_error,
                                   trigger=inp.trigger),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=20, maximum_interval=timedelta(seconds=30)),
            )
        finally:
            state.running = False
        state.runs += 1
        state.last_finished_at = workflow.now().isoformat().replace("+00:00", "Z")
        state.recent_sync_ids = (state.recent_sync_ids + list(inp.sync_ids))[-_RECENT:]

    @workflow.signal
    def force_sync(self, req: ForceSync) -> None:
        state = self.state
        if req.sync_id in state.recent_sync_ids or any(p.sync_id == req.sync_id for p in state.pending):
            return
        state.pending.append(req)

    @workflow.query
    def status(self) -> SyncState:
        return self.state


@workflow.defn(name=SWEEP_WORKFLOW)
class ScaiKeySyncSweepWorkflow:
    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        return await workflow.execute_activity_method(
            IdentitySyncActivities.sweep, inp,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                                     maximum_attempts=5),
        )


@workflow.defn(name=SCHEDULED_WORKFLOW)
class ScaiKeySyncScheduledWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledSyncInput) -> ScheduledSyncResult:
        requeued = await workflow.execute_activity_method(
            IdentitySyncActivities.requeue_pending, RequeueInput(older_than_seconds=inp.requeue_after_seconds),
            start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                     maximum_attempts=3),
        )
        if not inp.sweep:
            return ScheduledSyncResult(requeued=requeued)
        swept = await workflow.execute_activity_method(
            IdentitySyncActivities.sweep,
            SweepInput(sync_id=f"sync_{workflow.uuid4().hex}", reason="schedule", trigger="schedule",
                       heartbeat_timeout_seconds=inp.heartbeat_timeout_seconds),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                                     maximum_attempts=5),
        )
        return ScheduledSyncResult(requeued=requeued, tenant_ids=swept.tenant_ids)
