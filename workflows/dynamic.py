"""The per-engine lease revoker as a durable Temporal workflow (lifecycle.md §4.5; docs/dynamic.md "Revocation").

``LeaseRevoker`` (id ``<prefix>lease-revoker/<tenant_id>/<engine_id>``, task queue ``leases``): one entity per
engine, not per lease (the sharded-timer design; the measurement behind the choice is in docs/dynamic.md). Each
iteration runs ``leases.revoke_due`` (the engine's due leases from PostgreSQL, batched, rate-limited, through a
bounded pool) and then sleeps on one durable timer until the earliest remaining expiry or retry (at most
``idle_seconds``), or until a signal:

* ``wake`` (a lease expiring earlier than the current timer was issued, an explicit revoke, a retry);
* ``pause_revocation`` / ``resume_revocation`` (also ``POST /v1/dynamic/engines/{name}/revocation/pause|resume``):
  recorded in PostgreSQL by an activity, so the API, the workflow and a restarted worker agree;
* ``retry_failed`` (lease ids, or every failing lease): due at once.

Query ``state``: paused flag, totals, the failing leases with their errors (also shown as the workflow's
current details in the Temporal UI). The workflow ends when its engine is deleted and continues-as-new after
``iterations_before_continue`` iterations (bounded history).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.dynamic import LeaseActivities
    from workflows.types.dynamic import (
        PAUSE_SIGNAL,
        RECONCILE_WORKFLOW,
        RESUME_SIGNAL,
        RETRY_SIGNAL,
        REVOKER_WORKFLOW,
        STATE_QUERY,
        WAKE_SIGNAL,
        Pause,
        ReconcileInput,
        RetryFailed,
        RetryInput,
        RevokeDueInput,
        RevokeDueResult,
        RevokerInput,
        RevokerState,
        SetPausedInput,
        Wake,
    )

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=30), maximum_attempts=0)


@workflow.defn(name=REVOKER_WORKFLOW)
class LeaseRevokerWorkflow:
    @workflow.init
    def __init__(self, inp: RevokerInput) -> None:
        self.inp = inp
        self.state = RevokerState(engine_id=inp.engine_id)
        self.wake = False
        self.pause_requests: list[bool] = []
        self.retry_requests: list[list[str]] = []

    @workflow.run
    async def run(self, inp: RevokerInput) -> RevokerState:
        st = self.state
        for _ in range(max(1, inp.iterations_before_continue)):
            self.wake = False
            while self.pause_requests:
                paused = self.pause_requests.pop(0)
                await workflow.execute_activity_method(
                    LeaseActivities.set_paused, SetPausedInput(inp.tenant_id, inp.engine_id, paused),
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY)
            while self.retry_requests:
                ids = self.retry_requests.pop(0)
                await workflow.execute_activity_method(
                    LeaseActivities.retry, RetryInput(inp.tenant_id, inp.engine_id, ids),
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY)
            res: RevokeDueResult = await workflow.execute_activity_method(
                LeaseActivities.revoke_due, RevokeDueInput(inp.tenant_id, inp.engine_id),
                start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(seconds=20),
                retry_policy=_RETRY)
            if not res.engine_exists:
                return st
            st.paused = res.paused
            st.revoked_total += res.revoked
            st.failed_attempts_total += res.failed
            st.last_run_at = workflow.now().isoformat()
            st.next_due_in_seconds = res.next_due_in_seconds
            st.failing = list(res.failing)
            workflow.set_current_details(self._details())
            if res.more_due and not res.paused:
                continue
            wait = float(inp.idle_seconds)
            if res.next_due_in_seconds is not None and not res.paused:
                wait = min(wait, max(0.05, res.next_due_in_seconds))
            try:
                await workflow.wait_condition(lambda: self.wake, timeout=timedelta(seconds=wait))
            except TimeoutError:
                pass
        workflow.continue_as_new(inp)

    def _details(self) -> str:
        st = self.state
        lines = [f"paused: {st.paused}", f"revoked: {st.revoked_total}", f"failed attempts: {st.failed_attempts_total}"]
        for f in st.failing[:10]:
            lines.append(f"- {f.lease_id} [{f.status}, {f.attempts} attempts]: {f.last_error}")
        return "\n".join(lines)

    @workflow.signal(name=WAKE_SIGNAL)
    def on_wake(self, _: Wake) -> None:
        self.wake = True

    @workflow.signal(name=PAUSE_SIGNAL)
    def on_pause(self, _: Pause) -> None:
        self.pause_requests.append(True)
        self.wake = True

    @workflow.signal(name=RESUME_SIGNAL)
    def on_resume(self, _: Wake) -> None:
        self.pause_requests.append(False)
        self.wake = True

    @workflow.signal(name=RETRY_SIGNAL)
    def on_retry(self, req: RetryFailed) -> None:
        self.retry_requests.append(list(req.lease_ids))
        self.wake = True

    @workflow.query(name=STATE_QUERY)
    def query_state(self) -> RevokerState:
        return self.state


@workflow.defn(name=RECONCILE_WORKFLOW)
class LeaseReconcileWorkflow:
    """Run by the ``<prefix>lease-reconcile`` Schedule: (re)start the revoker of every engine with a lease overdue
    by more than ``late_seconds`` (a lease issued while Temporal was unreachable, a lost history). Idempotent:
    signal-with-start of a running revoker only wakes it."""

    @workflow.run
    async def run(self, inp: ReconcileInput) -> int:
        return await workflow.execute_activity_method(  # type: ignore[no-any-return]
            LeaseActivities.reconcile, inp, start_to_close_timeout=timedelta(minutes=2), retry_policy=_RETRY)
