"""The managed-certificate workflow (``cert-renewal/<tenant>/<cert>``, pki task queue): one per ACME certificate
lineage. It works the first order, then sleeps until the renewal point (services/acme/renewal.py), places a
renewal order, stores the new certificate (``renewed_from_id``) and loops.

- Signals ``renew_now`` (renew at once, or retry at once while backing off), ``pause``, ``resume``; query
  ``state`` (next renewal, last attempt and its error, current order, certificate history).
- A failed attempt is classified by the activity (``acme_challenge_failed``, ``backend_rate_limited`` with the
  CA's ``Retry-After``, ``dns_provider_error``, ``acme_backend_error``), audited, and retried with exponential
  backoff (ACME_RETRY_BASE_SECONDS doubling up to ACME_RETRY_MAX_SECONDS). After ACME_ORDER_MAX_TRIES failed
  attempts the order is abandoned (``invalid``) and a fresh one is placed: no order is reused forever.
- A killed worker loses nothing: the order activity heartbeats and is retried on the next worker, and storing the
  certificate is idempotent under the order's row lock. The workflow continues-as-new every 25 cycles.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.acme import AcmeActivities
    from workflows.types.acme import (
        MANAGED_WORKFLOW,
        PAUSE_SIGNAL,
        RENEW_NOW_SIGNAL,
        RESUME_SIGNAL,
        STATE_QUERY,
        ErrorInfo,
        FailureInput,
        InternalFailureInput,
        InternalRenewInput,
        ManagedInput,
        ManagedState,
        RenewalOrderInput,
        RunOrderInput,
        renewal_point,
    )

_SHORT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_CYCLES_BEFORE_CONTINUE = 25


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _error(exc: BaseException) -> tuple[str, str, float | None]:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(cause, ApplicationError) and cause.type:
        retry_after = None
        if cause.details and isinstance(cause.details[0], dict):
            retry_after = cause.details[0].get("retry_after")
        return cause.type, cause.message, retry_after
    return "internal_error", str(cause) or type(cause).__name__, None


@workflow.defn(name=MANAGED_WORKFLOW)
class ManagedCertificateWorkflow:
    @workflow.init
    def __init__(self, inp: ManagedInput) -> None:
        self.state = inp.state or ManagedState(current_order_id=inp.order_id)
        self.renew_now = False

    @workflow.signal(name=RENEW_NOW_SIGNAL)
    def on_renew_now(self) -> None:
        self.renew_now = True

    @workflow.signal(name=PAUSE_SIGNAL)
    def on_pause(self) -> None:
        self.state.paused = True

    @workflow.signal(name=RESUME_SIGNAL)
    def on_resume(self) -> None:
        self.state.paused = False

    @workflow.query(name=STATE_QUERY)
    def query_state(self) -> ManagedState:
        s = self.state
        if s.paused:
            return ManagedState(**{**s.__dict__, "status": "paused"})
        return s

    async def _wait_unpaused(self) -> None:
        if self.state.paused:
            await workflow.wait_condition(lambda: not self.state.paused or self.renew_now)

    @workflow.run
    async def run(self, inp: ManagedInput) -> ManagedState:
        s = self.state
        if inp.kind == "internal":
            return await self._run_internal(inp)
        for _ in range(_CYCLES_BEFORE_CONTINUE):
            if s.current_order_id is None:
                if not s.auto_renew or s.current_certificate_id is None:
                    s.status = "stopped"
                    return s
                await self._sleep_until_renewal()
                s.current_order_id = await workflow.execute_activity_method(
                    AcmeActivities.renewal_order, RenewalOrderInput(
                        tenant_id=inp.tenant_id, managed_id=inp.managed_id,
                        from_certificate_id=s.current_certificate_id, previous_order_id=inp.order_id),
                    start_to_close_timeout=timedelta(minutes=1), retry_policy=_SHORT)
                s.order_tries = 0
            await self._attempt(inp)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(ManagedInput(**{**inp.__dict__, "state": s}))

    async def _sleep_until_renewal(self) -> None:
        s = self.state
        assert s.not_before and s.not_after
        due = renewal_point(_parse(s.not_before), _parse(s.not_after), s.renew_before_seconds)
        s.next_renewal = _iso(due)
        s.status = "waiting"
        while not self.renew_now:
            if s.paused:
                await self._wait_unpaused()
                continue
            remaining = (due - workflow.now()).total_seconds()
            if remaining <= 0:
                break
            try:
                await workflow.wait_condition(lambda: self.renew_now or s.paused, timeout=timedelta(seconds=remaining))
            except TimeoutError:
                break
        self.renew_now = False

    async def _attempt(self, inp: ManagedInput) -> None:
        s = self.state
        await self._wait_unpaused()
        self.renew_now = False
        assert s.current_order_id is not None
        s.status = "ordering"
        s.next_retry_at = None
        s.last_attempt_at = _iso(workflow.now())
        attempt = s.order_tries + 1
        try:
            res = await workflow.execute_activity_method(
                AcmeActivities.run_order, RunOrderInput(tenant_id=inp.tenant_id, order_id=s.current_order_id,
                                                        attempt=attempt),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                                         maximum_attempts=20))
        except ActivityError as exc:
            code, message, retry_after = _error(exc)
            s.attempts += 1
            s.order_tries = attempt
            s.last_error = ErrorInfo(code=code, message=message[:500], at=_iso(workflow.now()),
                                     retry_after_seconds=retry_after)
            abandon = attempt >= inp.max_order_tries
            fresh = await workflow.execute_activity_method(
                AcmeActivities.record_failure, FailureInput(
                    tenant_id=inp.tenant_id, order_id=s.current_order_id, code=code, message=message[:500],
                    attempt=attempt, abandon=abandon),
                start_to_close_timeout=timedelta(minutes=1), retry_policy=_SHORT)
            if abandon and fresh:
                s.current_order_id = fresh
                s.order_tries = 0
            delay = min(inp.retry_base_seconds * 2 ** (s.attempts - 1), inp.retry_max_seconds)
            if retry_after is not None:
                delay = max(delay, retry_after)  # never earlier than the CA asked
            s.status = "backoff"
            s.next_retry_at = _iso(workflow.now() + timedelta(seconds=delay))
            try:
                await workflow.wait_condition(lambda: self.renew_now, timeout=timedelta(seconds=delay))
            except TimeoutError:
                pass
            return
        s.current_certificate_id = res.certificate_id
        s.not_before, s.not_after = res.not_before, res.not_after
        s.auto_renew, s.renew_before_seconds = res.auto_renew, res.renew_before_seconds
        s.renewals += 1 if res.renewed else 0
        s.history = [*s.history, res.certificate_id][-20:]
        s.current_order_id, s.order_tries, s.attempts, s.last_error = None, 0, 0, None
        s.next_retry_at = None

    # ------------------------------------------------------------------ kind "internal": the tenant's own CA

    async def _run_internal(self, inp: ManagedInput) -> ManagedState:
        """Sleep until the renewal point, re-issue through the role (activity ``pki.renew_internal``), loop.

        A failed attempt is classified (services/pki/renewal.py FAILURE_CODES), audited and retried with the same
        backoff as ACME; after ``max_order_tries`` consecutive failures the workflow stops retrying on its own
        (status ``failed``, the error kept in the query) until ``renew_now`` (send it once the cause is
        fixed). A revoked certificate is final: the workflow ends (``stopped``)."""
        s = self.state
        for _ in range(_CYCLES_BEFORE_CONTINUE):
            if not s.auto_renew or s.current_certificate_id is None:
                s.status = "stopped"
                return s
            if s.attempts == 0:
                await self._sleep_until_renewal()
            await self._wait_unpaused()
            self.renew_now = False
            s.status = "ordering"
            s.next_retry_at = None
            s.last_attempt_at = _iso(workflow.now())
            attempt = s.attempts + 1
            try:
                res = await workflow.execute_activity_method(
                    AcmeActivities.renew_internal, InternalRenewInput(
                        tenant_id=inp.tenant_id, managed_id=inp.managed_id,
                        from_certificate_id=s.current_certificate_id, attempt=attempt),
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1),
                                             maximum_interval=timedelta(minutes=1), maximum_attempts=20))
            except ActivityError as exc:
                code, message, _ = _error(exc)
                s.attempts = attempt
                s.last_error = ErrorInfo(code=code, message=message[:500], at=_iso(workflow.now()))
                final = attempt >= inp.max_order_tries or code == "renewal_certificate_revoked"
                await workflow.execute_activity_method(
                    AcmeActivities.renew_internal_failed, InternalFailureInput(
                        tenant_id=inp.tenant_id, managed_id=inp.managed_id,
                        from_certificate_id=s.current_certificate_id, code=code, message=message[:500],
                        attempt=attempt, final=final),
                    start_to_close_timeout=timedelta(minutes=1), retry_policy=_SHORT)
                if code == "renewal_certificate_revoked":
                    s.status = "stopped"
                    return s
                if final:
                    s.status = "failed"
                    await workflow.wait_condition(lambda: self.renew_now)
                    s.attempts = 0  # a fresh series of tries once an operator asks again
                    continue
                delay = min(inp.retry_base_seconds * 2 ** (attempt - 1), inp.retry_max_seconds)
                s.status = "backoff"
                s.next_retry_at = _iso(workflow.now() + timedelta(seconds=delay))
                try:
                    await workflow.wait_condition(lambda: self.renew_now, timeout=timedelta(seconds=delay))
                except TimeoutError:
                    pass
                continue
            s.current_certificate_id = res.certificate_id
            s.not_before, s.not_after = res.not_before, res.not_after
            s.renewals += 1
            s.history = [*s.history, res.certificate_id][-20:]
            s.attempts, s.last_error, s.next_retry_at = 0, None, None
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(ManagedInput(**{**inp.__dict__, "state": s}))
