"""Webhook delivery across a worker SIGKILL and across a relay crash between workflow start and commit.

What the design promises (docs/events.md, services/events/relay.py): at-least-once delivery with one delivery
row per (webhook, event) and a stable ``X-ScaiVault-Event-Id`` the receiver de-duplicates on. So:

* a POST in flight when the worker dies is sent again (same event id) by the next worker: the receiver sees
  exactly 2 requests for that event, and there is exactly 1 delivery row, ``success`` with 1 recorded attempt
  (the killed attempt never recorded anything) and exactly 1 ``webhook_delivery`` audit row;
* a relay that dies after starting the delivery workflows but before marking the events dispatched leaves
  the events undispatched; the re-dispatch finds the workflows already started (their ids are derived from
  (webhook, event), REJECT_DUPLICATE) and the delivery rows already there (ON CONFLICT DO NOTHING): the
  receiver sees exactly 1 request per event and there is exactly 1 delivery row per event.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from clients.webhook_verify import EVENT_ID_HEADER
from db.engine import Database
from repositories.events import outbox as events_repo
from services.events.relay import EventRelay, delivery_workflow_id
from tests.webhook_receiver import Receiver, wait_for
from worker.client import connect
from workflows.types.events import DeliveryResult


class HoldingReceiver(Receiver):
    """Records each request at arrival; the first one then blocks (no response) until ``release()``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(secrets)
        self.gate = threading.Event()
        self.server.handle_error = lambda *_: None  # type: ignore[method-assign]  # the held POST's socket is dead

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        status = super()._record(headers, body)
        if len(self.snapshot()) == 1:
            self.gate.wait(timeout=120)
        return status

    def release(self) -> None:
        self.gate.set()


def event_ids(rx: Receiver) -> Counter[str]:
    return Counter(r.headers[EVENT_ID_HEADER] for r in rx.snapshot())


async def wait_workflows_done(settings: Any, hook_id: str, evts: list[str]) -> dict[str, str]:
    """Await each delivery workflow's result (it has finished: no further attempt can come); run ids."""
    client = await connect(settings)
    runs = {}
    for evt in evts:
        handle = client.get_workflow_handle(delivery_workflow_id(settings, hook_id, evt),
                                            result_type=DeliveryResult)
        result = await handle.result()
        assert result == DeliveryResult("success", 1)  # one attempt as the workflow history records it
        desc = await handle.describe()
        runs[evt] = desc.run_id
    return runs


@pytest.mark.slow
async def test_worker_sigkill_with_a_webhook_post_in_flight(stack_factory, worker_process, hook_secret):
    stack = await stack_factory(webhook_timeout_seconds=60)  # the held POST must not time out on its own
    rx = HoldingReceiver([hook_secret])
    rx.start()
    try:
        hook = await stack.create_webhook(rx.url, hook_secret)
        worker = worker_process(stack.settings)
        [evt] = await stack.emit(count=1)
        await wait_for(lambda: len(rx.snapshot()) == 1, what="the first POST to arrive (and be held)")
        worker.kill()  # SIGKILL while the receiver holds the POST: no response was ever read
        rx.release()
        worker_process(stack.settings)
        await wait_workflows_done(stack.settings, hook["id"], [evt])

        assert event_ids(rx) == Counter({evt: 2})  # the in-flight POST, then exactly one retry of it
        assert all(r.verified for r in rx.snapshot())
        rows = await stack.sql("SELECT event_id, status, attempts, response_code FROM webhook_deliveries"
                               " WHERE webhook_id = $1", hook["id"])
        assert [dict(r) for r in rows] == [{"event_id": evt, "status": "success", "attempts": 1,
                                            "response_code": 200}]
        audited = await stack.sql("SELECT success FROM audit_log WHERE action = 'webhook_delivery'"
                                  " AND resource_id = $1", hook["id"])
        assert [r["success"] for r in audited] == [True]
    finally:
        rx.release()
        rx.stop()


@pytest.mark.slow
async def test_relay_crash_between_workflow_start_and_commit(stack, worker_process, receiver_factory, hook_secret,
                                                             monkeypatch):
    rx = receiver_factory([hook_secret])
    hook = await stack.create_webhook(rx.url, hook_secret)
    evts = await stack.emit(count=3)
    temporal = await connect(stack.settings)
    db = Database(stack.settings)
    relay = EventRelay(stack.settings, db, temporal)
    real_mark = events_repo.mark_dispatched

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("injected crash: workflows started, dispatch not committed")

    try:
        monkeypatch.setattr(events_repo, "mark_dispatched", crash)
        with pytest.raises(RuntimeError, match="injected crash"):
            await relay.dispatch_batch()
        monkeypatch.setattr(events_repo, "mark_dispatched", real_mark)

        # the crash left: workflows started, delivery rows pending, events still undispatched
        undispatched = await stack.sql("SELECT event_id FROM events WHERE dispatched_at IS NULL"
                                       " AND event_id = ANY($1::text[])", evts)
        assert sorted(r["event_id"] for r in undispatched) == sorted(evts)
        rows = await stack.sql("SELECT event_id, status FROM webhook_deliveries WHERE webhook_id = $1", hook["id"])
        assert sorted((r["event_id"], r["status"]) for r in rows) == sorted((e, "pending") for e in evts)
        for evt in evts:
            desc = await temporal.get_workflow_handle(delivery_workflow_id(stack.settings, hook["id"], evt)).describe()
            assert desc.status == WorkflowExecutionStatus.RUNNING

        worker_process(stack.settings)  # its relay re-dispatches the same events while they are delivered
        runs = await wait_workflows_done(stack.settings, hook["id"], evts)

        async def all_dispatched() -> bool:
            return not await stack.sql("SELECT 1 FROM events WHERE dispatched_at IS NULL")

        await wait_for(all_dispatched, what="the re-dispatch to commit")
        # a later re-dispatch (another crash before the commit) finds finished workflows: nothing restarts
        await stack.sql("UPDATE events SET dispatched_at = NULL WHERE event_id = ANY($1::text[])", evts)
        assert await relay.drain() == 3
        for evt in evts:
            desc = await temporal.get_workflow_handle(delivery_workflow_id(stack.settings, hook["id"], evt)).describe()
            assert (desc.run_id, desc.status) == (runs[evt], WorkflowExecutionStatus.COMPLETED)

        assert event_ids(rx) == Counter({e: 1 for e in evts})  # exactly one POST per event
        rows = await stack.sql("SELECT event_id, status, attempts FROM webhook_deliveries WHERE webhook_id = $1",
                               hook["id"])
        assert sorted(tuple(r) for r in rows) == sorted((e, "success", 1) for e in evts)
    finally:
        await db.dispose()
