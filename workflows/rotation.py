"""Per-secret rotation schedule as a durable Temporal workflow (lifecycle.md §1.2, §1.6; docs/rotation.md).

``SecretRotation`` (id ``<prefix>rotation/<tenant_id>/<secret_id>``, task queue ``rotation``): one entity per
attached secret. Each loop iteration reloads the plan from PostgreSQL (policy, cycle, anchor, marks already
recorded), so a policy change (signal ``reschedule``) moves every timer without a restart, and nothing the
workflow needs lives only in its history. Per cycle (anchor = last rotation):

* each ``warn_before`` threshold -> mark + ``rotation.due`` (threshold);
* the due time -> mark + ``rotation.due`` (``due_now: true``); then with ``auto_generate`` the rotation itself
  (activity ``rotation.rotate``: generate, write through the secrets path; idempotent per cycle), otherwise
  wait for an outside write, and after ``grace_period`` mark + ``rotation.overdue`` (status stays overdue
  until the write lands);
* marks that were missed while paused or down: only the latest passed one fires, the earlier ones are
  recorded as skipped (a disabled policy enabled after its due time rotates at once, without a burst of
  stale warnings).

A failed rotation (the activity's own retries exhausted) is recorded (history, ``rotation.failed``) and retried
after an exponential backoff. Signals ``rotate_now`` and ``reschedule``; query ``state``. The workflow ends when
the secret is detached (or its policy deleted); it continues-as-new after a bounded number of iterations.

``load_plan`` and ``mark`` (short PostgreSQL reads and one idempotent transaction) run as *local* activities:
they execute inside the workflow task and are recorded as markers, so a timer that fires costs one workflow
task instead of a round trip through the server per step (measured: bench/rotation_bench.py, docs/rotation.md).
The rotation itself stays a regular activity (heartbeats, minutes-long timeout, retried on another worker if
this one dies). Executions started before this change keep the old path (patch ``LOCAL_STEPS_PATCH``).
The workflow is not sandboxed: it calls only workflow APIs, and the sandbox re-created this module on every
cache miss (the largest worker cost in a burst of rotations; the webhook delivery workflow does the same).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.rotation import RotationActivities
    from workflows.types.rotation import (
        RECONCILE_WORKFLOW,
        RESCHEDULE_SIGNAL,
        ROTATE_NOW_SIGNAL,
        ROTATION_WORKFLOW,
        STATE_QUERY,
        FailureInput,
        MarkInput,
        Plan,
        PlanInput,
        ReconcileInput,
        Reschedule,
        RotateInput,
        RotateNow,
        RotationInput,
        RotationState,
    )

_SHORT = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(minutes=1), maximum_attempts=0)
LOCAL_STEPS_PATCH = "rotation-local-steps-v1"
_ROTATE = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                      maximum_interval=timedelta(minutes=2), maximum_attempts=5)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _error(exc: BaseException) -> tuple[str, str]:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(cause, ApplicationError):
        return cause.type or "internal_error", cause.message
    return "internal_error", str(cause) or type(cause).__name__


def schedule(plan: Plan) -> list[tuple[datetime, str]]:
    """This cycle's remaining marks in time order: thresholds, ``due``, then ``overdue`` (event-driven only)."""
    due = _parse(plan.anchor_at) + timedelta(seconds=plan.interval_seconds)
    items = [(due - timedelta(seconds=t.seconds), t.label) for t in plan.thresholds]
    items.append((due, "due"))
    if not plan.auto_generate:
        items.append((due + timedelta(seconds=plan.grace_seconds), "overdue"))
    items.sort(key=lambda i: i[0])
    return [i for i in items if i[1] not in plan.marks]


@workflow.defn(name=ROTATION_WORKFLOW, sandboxed=False)
class SecretRotationWorkflow:
    @workflow.init
    def __init__(self, inp: RotationInput) -> None:
        self.inp = inp
        self.state = RotationState(tenant_id=inp.tenant_id, secret_id=inp.secret_id, failures=inp.failures)
        self.wake = False
        self.manual: list[RotateNow] = []
        self.seen: list[str] = []
        self.local = False  # set in run(): local load_plan/mark (patched)

    @workflow.run
    async def run(self, inp: RotationInput) -> RotationState:
        st = self.state
        self.local = workflow.patched(LOCAL_STEPS_PATCH)
        iterations = 0
        while iterations < max(1, inp.iterations_before_continue) or self.manual:  # never drop a rotate_now
            iterations += 1
            if workflow.info().is_continue_as_new_suggested() and not self.manual:
                break
            self.wake = False
            plan = await self._plan()
            if not plan.attached:
                st.status, st.next_action, st.next_action_at = "detached", None, None
                return st
            self._show(plan)
            if self.manual:
                req = self.manual.pop(0)
                await self._manual(plan, req)
                continue
            if not plan.secret_live:  # soft-deleted: recorded once per cycle; a restore wakes nothing, a write does
                if "failed:0" not in plan.marks:
                    await self._failed(plan, "secret_not_found", "the secret is deleted", "schedule", None, attempt=0)
                st.status = "failed"
                st.last_error = {"code": "secret_not_found", "message": "the secret is deleted"}
                await self._idle()
                continue
            if not plan.is_active:
                st.status, st.next_action, st.next_action_at = "paused", None, None
                await self._idle()
                continue
            todo = schedule(plan)
            now = workflow.now()
            due = _parse(plan.anchor_at) + timedelta(seconds=plan.interval_seconds)
            passed = [m for at, m in todo if at <= now]
            if passed:
                mark, skipped = passed[-1], passed[:-1]
                await self._mark(plan, mark, skipped)
                if mark == "due" and plan.auto_generate:
                    await self._rotate(plan, "schedule", None)
                continue
            if plan.auto_generate and "due" in plan.marks and now >= due:
                await self._rotate(plan, "schedule", None)  # due already announced; the rotation is still owed
                continue
            if not todo:
                st.next_action, st.next_action_at = None, None
                await self._idle()  # overdue (or nothing left): wait for the outside write or a signal
                continue
            at, mark = todo[0]
            st.next_action, st.next_action_at = mark, _iso(at)
            await self._idle(at - now)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(dataclasses.replace(inp, failures=st.failures))

    def _show(self, plan: Plan) -> None:
        st = self.state
        labels = {t.label for t in plan.thresholds}
        st.policy_id, st.cycle, st.anchor_at, st.status = plan.policy_id, plan.cycle, plan.anchor_at, plan.status
        st.next_due_at = _iso(_parse(plan.anchor_at) + timedelta(seconds=plan.interval_seconds))
        st.thresholds_fired = [m for m in plan.marks if m in labels]

    async def _idle(self, timeout: timedelta | None = None) -> None:  # noqa: ASYNC109 (a workflow timer)
        try:
            await workflow.wait_condition(lambda: self.wake or bool(self.manual), timeout=timeout)
        except TimeoutError:
            pass

    async def _plan(self) -> Plan:
        arg = PlanInput(self.inp.tenant_id, self.inp.secret_id)
        if self.local:
            return await workflow.execute_local_activity_method(  # type: ignore[no-any-return]
                RotationActivities.load_plan, arg, start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_SHORT)
        return await workflow.execute_activity_method(  # type: ignore[no-any-return]
            RotationActivities.load_plan, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_SHORT)

    async def _mark(self, plan: Plan, mark: str, skipped: list[str], trigger: str = "schedule") -> None:
        arg = MarkInput(self.inp.tenant_id, self.inp.secret_id, plan.cycle, mark, skipped=skipped, trigger=trigger)
        if self.local:
            await workflow.execute_local_activity_method(
                RotationActivities.mark, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_SHORT)
            return
        await workflow.execute_activity_method(
            RotationActivities.mark, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=_SHORT)

    async def _manual(self, plan: Plan, req: RotateNow) -> None:
        if plan.auto_generate and plan.secret_live:
            await self._rotate(plan, req.trigger, req.history_id)
        elif plan.secret_live:  # event-driven: announce it; the outside write completes the pending history row
            if "due" not in plan.marks:
                await self._mark(plan, "due", [], trigger=req.trigger)
        else:
            await self._failed(plan, "secret_not_found", "the secret is deleted", req.trigger, req.history_id)

    async def _rotate(self, plan: Plan, trigger: str, history_id: str | None) -> None:
        st = self.state
        try:
            result = await workflow.execute_activity_method(
                RotationActivities.rotate,
                RotateInput(self.inp.tenant_id, self.inp.secret_id, plan.cycle, _iso(workflow.now()),
                            trigger=trigger, history_id=history_id),
                start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(seconds=30),
                retry_policy=_ROTATE)
        except ActivityError as exc:
            code, message = _error(exc)
            await self._failed(plan, code, message, trigger, history_id)
            backoff = min(self.inp.failure_backoff_seconds * 2 ** max(0, st.failures - 1),
                          self.inp.max_failure_backoff_seconds)
            st.next_action, st.next_action_at = "retry", _iso(workflow.now() + timedelta(seconds=backoff))
            await self._idle(timedelta(seconds=backoff))
            return
        st.last_result, st.last_error, st.failures = result.status, None, 0
        st.rotations += 1 if result.status == "success" else 0

    async def _failed(self, plan: Plan, code: str, message: str, trigger: str, history_id: str | None,
                      attempt: int | None = None) -> None:
        st = self.state
        if attempt is None:
            st.failures += 1
        st.last_result, st.last_error, st.status = "failed", {"code": code, "message": message}, "failed"
        await workflow.execute_activity_method(
            RotationActivities.record_failure,
            FailureInput(self.inp.tenant_id, self.inp.secret_id, plan.cycle, code, message,
                         attempt=st.failures if attempt is None else attempt,
                         trigger=trigger, history_id=history_id),
            start_to_close_timeout=timedelta(seconds=30), retry_policy=_SHORT)

    @workflow.signal(name=ROTATE_NOW_SIGNAL)
    def rotate_now(self, req: RotateNow) -> None:
        if req.history_id in self.seen:
            return
        self.seen = [*self.seen, req.history_id][-50:]
        self.manual.append(req)

    @workflow.signal(name=RESCHEDULE_SIGNAL)
    def reschedule(self, req: Reschedule) -> None:
        self.wake = True

    @workflow.query(name=STATE_QUERY)
    def query_state(self) -> RotationState:
        return self.state


@workflow.defn(name=RECONCILE_WORKFLOW)
class RotationReconcileWorkflow:
    """What the ``rotation-reconcile`` Schedule starts: signal-with-start every attachment whose workflow start was
    never acknowledged (the API commits the attachment first; Temporal may have been unavailable)."""

    @workflow.run
    async def run(self, inp: ReconcileInput) -> int:
        return await workflow.execute_activity_method(  # type: ignore[no-any-return]
            RotationActivities.reconcile, inp, start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2), retry_policy=RetryPolicy(maximum_attempts=3))
