"""The delivery workflow as the Temporal UI shows it: one workflow per (webhook, event) with its result and the
``attempts`` query; attempt 1 as a local activity, and inputs recorded before that change still delivering
through the regular activity."""

from __future__ import annotations

from dataclasses import replace

from temporalio.api.enums.v1 import EventType
from temporalio.common import WorkflowIDReusePolicy

from services.events.relay import delivery_input, delivery_workflow_id
from tests.helpers import TENANT
from tests.webhook_receiver import wait_for
from worker.client import connect
from workflows.types.events import ATTEMPTS_QUERY, DELIVERY_WORKFLOW, DeliveryResult


async def _event_types(handle) -> list[int]:
    return [e.event_type async for e in handle.fetch_history_events()]


async def test_first_attempt_runs_inside_the_first_workflow_task(stack, worker_process, receiver_factory,
                                                                 hook_secret):
    rx = receiver_factory([hook_secret])
    hook = await stack.create_webhook(rx.url, hook_secret)
    worker_process(stack.settings)
    [event_id] = await stack.emit()
    await wait_for(lambda: rx.successes(), what="a delivery")

    client = await connect(stack.settings)
    handle = client.get_workflow_handle(delivery_workflow_id(stack.settings, hook["id"], event_id),
                                      result_type=DeliveryResult)
    assert await handle.result() == DeliveryResult("success", 1)
    assert await handle.query(ATTEMPTS_QUERY) == 1
    types = await _event_types(handle)
    assert EventType.EVENT_TYPE_MARKER_RECORDED in types  # the local activity's result
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1


async def test_input_from_before_local_first_attempts_uses_the_regular_activity(
        stack, worker_process, receiver_factory, hook_secret):
    rx = receiver_factory([hook_secret])
    # The hook does not match the event, so the relay starts nothing for it; this test starts the workflow.
    hook = await stack.create_webhook(rx.url, hook_secret, events=["certificate.issued"])
    worker_process(stack.settings)
    [event_id] = await stack.emit("secret.created")

    client = await connect(stack.settings)
    old_input = replace(delivery_input(stack.settings, TENANT, hook["id"], event_id),
                        first_attempt_local=False)
    handle = await client.start_workflow(
        DELIVERY_WORKFLOW, old_input, id=delivery_workflow_id(stack.settings, hook["id"], event_id),
        task_queue=stack.settings.task_queue("events"), id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        result_type=DeliveryResult)
    assert await handle.result() == DeliveryResult("success", 1)
    [got] = rx.successes()
    assert got.verified and got.event["event_id"] == event_id
    types = await _event_types(handle)
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in types
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in types
