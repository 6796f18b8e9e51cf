"""Event workflows.

* ``WebhookDelivery`` (id ``<prefix>webhook-delivery/<wh>/<evt>``): attempt, then wait the next delay of the
  retry schedule (or less, if signalled ``redeliver``), until a 2xx, the webhook is gone, or the schedule is
  exhausted (dead letter: the delivery row is ``failed``). Signal ``redeliver`` retries at once; signal-with-
  start on a finished workflow begins a fresh schedule. Query ``attempts``.
  Performance: attempt 1 is a local activity (one workflow task for a delivery that succeeds at once), and the
  workflow is not sandboxed (it calls only workflow APIs; the sandbox re-imported this module for every new
  delivery, measured as the largest worker cost per delivery).
* ``EventRelay`` (id ``<prefix>events-relay``): runs the relay activity (LISTEN + sweep) back to back,
  continuing-as-new every ``iterations_per_run`` runs; the activity heartbeats, so a killed worker's relay
  resumes on another worker after the heartbeat timeout.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from workflows.types.events import (
        ATTEMPTS_QUERY,
        DELIVERY_WORKFLOW,
        REDELIVER_SIGNAL,
        RELAY_WORKFLOW,
        AttemptInput,
        AttemptResult,
        DeliveryInput,
        DeliveryResult,
        RelayInput,
        RelayRunInput,
    )

# Infrastructure failures (DB down, worker crash) retry forever with a capped backoff; receiver failures are
# not activity failures (the activity returns an outcome), so they follow the webhook retry schedule instead.
_INFRA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                           backoff_coefficient=2.0, maximum_attempts=0)

# A local first attempt retries only briefly in-process; then the regular activity takes over.
_LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=4),
                           backoff_coefficient=2.0, maximum_attempts=3)


@workflow.defn(name=DELIVERY_WORKFLOW, sandboxed=False)
class WebhookDeliveryWorkflow:
    def __init__(self) -> None:
        self._attempts = 0
        self._redeliver = False

    @workflow.run
    async def run(self, inp: DeliveryInput) -> DeliveryResult:
        delays = inp.retry_delays_ms
        retry_index = 0
        while True:
            self._redeliver = False
            next_delay = delays[retry_index] if retry_index < len(delays) else None
            self._attempts += 1
            res = await self._attempt(inp, AttemptInput(
                tenant_id=inp.tenant_id, webhook_id=inp.webhook_id, event_id=inp.event_id,
                attempt=self._attempts, next_delay_ms=next_delay))
            if res.outcome == "gone":
                return DeliveryResult("gone", self._attempts)
            if self._redeliver and res.outcome in ("success", "dead"):
                retry_index = 0  # redeliver arrived during the final attempt: start a fresh schedule
                continue
            if res.outcome == "success":
                return DeliveryResult("success", self._attempts)
            if res.outcome == "dead" or next_delay is None:
                return DeliveryResult("failed", self._attempts)
            if not self._redeliver:
                try:
                    await workflow.wait_condition(lambda: self._redeliver,
                                                  timeout=timedelta(milliseconds=next_delay))
                except TimeoutError:
                    pass
            retry_index += 1

    async def _attempt(self, inp: DeliveryInput, attempt: AttemptInput) -> AttemptResult:
        """The first attempt runs as a local activity inside the first workflow task (no activity task round
        trip through the server; with an eager start the whole successful delivery is one workflow task).
        If the worker dies meanwhile, the workflow task times out and another worker runs it again from the
        start (at-least-once, like any activity). If it fails for infrastructure reasons (DB down) three
        times, the same attempt continues as a regular activity that Temporal retries forever. Later
        attempts (after a timer) are regular activities, so the retry schedule's timers and attempts are
        visible in the history as before."""
        timeout = timedelta(seconds=inp.attempt_timeout_seconds)
        if self._attempts == 1 and inp.first_attempt_local:
            try:
                return await workflow.execute_local_activity_method(
                    EventActivities.attempt_delivery, attempt, start_to_close_timeout=timeout,
                    retry_policy=_LOCAL_RETRY)
            except ActivityError:
                workflow.logger.info("local first attempt failed; falling back to a regular activity")
        return await workflow.execute_activity_method(
            EventActivities.attempt_delivery, attempt, start_to_close_timeout=timeout, retry_policy=_INFRA_RETRY)

    @workflow.signal(name=REDELIVER_SIGNAL)
    def redeliver(self) -> None:
        self._redeliver = True

    @workflow.query(name=ATTEMPTS_QUERY)
    def attempts(self) -> int:
        return self._attempts


@workflow.defn(name=RELAY_WORKFLOW)
class EventRelayWorkflow:
    @workflow.run
    async def run(self, inp: RelayInput) -> None:
        for _ in range(max(1, inp.iterations_per_run)):
            await workflow.execute_activity_method(
                EventActivities.run_relay,
                RelayRunInput(run_seconds=inp.run_seconds),
                start_to_close_timeout=timedelta(seconds=inp.run_seconds + 120),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_seconds),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1),
                                         maximum_interval=timedelta(seconds=10), maximum_attempts=0),
            )
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(inp)
