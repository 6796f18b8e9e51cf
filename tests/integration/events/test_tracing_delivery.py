"""Trace of a webhook delivery: the relay activity starts the delivery workflow, whose attempt (a local
activity) makes the signed POST to the receiver, all one trace (core/tracing.py, TracingInterceptor)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from opentelemetry.trace import SpanKind

from tests.helpers import TENANT
from tests.observability.tracing_helpers import ancestors, assert_no_value, by_id, spans
from tests.webhook_receiver import wait_for

__all__ = ["spans"]


@asynccontextmanager
async def events_worker(settings):
    """An in-process worker for the events queue (same registration as ``scaivault worker``) plus the relay."""
    import redis.asyncio as aioredis
    from temporalio.worker import Worker

    from db.engine import Database
    from services.events.relay import ensure_relay
    from worker.client import connect
    from worker.registry import EVENTS, REGISTRATIONS, WorkerDeps

    client = await connect(settings)  # tracing is on: the client (and so the worker) has TracingInterceptor
    db = Database(settings, pool_size=4, application_name="tracing-test-worker")
    redis = aioredis.Redis.from_url(settings.redis_url)
    reg = next(r for r in REGISTRATIONS if r.concern == EVENTS)
    try:
        async with Worker(client, task_queue=settings.task_queue(EVENTS), workflows=reg.workflows(),
                          activities=reg.activities(WorkerDeps(settings=settings, db=db, redis=redis,
                                                               temporal=client))):
            await ensure_relay(client, settings)
            yield client
    finally:
        await redis.aclose()
        await db.dispose()


async def test_webhook_delivery_span_tree(stack, receiver_factory, hook_secret, spans):
    rx = receiver_factory([hook_secret])
    hook = await stack.create_webhook(rx.url, hook_secret)
    async with events_worker(stack.settings):
        [event_id] = await stack.emit()
        await wait_for(lambda: rx.successes(), what="a delivery")
        finished = []

        def delivered():
            finished[:] = spans.get_finished_spans()
            return any(s.name.startswith("RunActivity:events.attempt_delivery") for s in finished)

        await wait_for(delivered, what="the attempt's span")
    index = by_id(finished)
    attempt = next(s for s in finished if s.name == "RunActivity:events.attempt_delivery")
    chain = [s.name for s in ancestors(attempt, index)]
    # attempt <- StartActivity (the local first attempt) <- StartWorkflow:WebhookDelivery <- the relay activity's
    # span (still open: the relay is long-running, so it is not among the finished spans)
    assert chain[:2] == ["StartActivity:events.attempt_delivery", "StartWorkflow:WebhookDelivery"], chain
    start = index[attempt.parent.span_id].parent
    assert start is not None and index[start.span_id].parent is not None, "the start has the relay as parent"
    runs = [s for s in finished if s.name == "RunWorkflow:WebhookDelivery"
            and s.context.trace_id == attempt.context.trace_id]
    assert runs and runs[0].parent.span_id == start.span_id
    assert attempt.attributes["temporalWorkflowID"].endswith(f"webhook-delivery/{hook['id']}/{event_id}")
    posts = [s for s in finished if s.kind == SpanKind.CLIENT and s.name == "POST" and attempt in ancestors(s, index)]
    assert posts, "the delivery's HTTP POST is a child of the attempt"
    assert posts[0].context.trace_id == attempt.context.trace_id
    assert_no_value(finished, hook_secret)
    assert TENANT  # deliveries started by the relay carry no request: tenant comes with search attributes
