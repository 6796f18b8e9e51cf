"""The outbox relay: committed ``events`` rows -> webhook delivery workflows + subscription polling buffers.

One batch, one transaction: lock undispatched rows (``FOR UPDATE SKIP LOCKED``, so relays never collide),
match them against the tenants' enabled webhooks and polling subscriptions, write the delivery rows and buffer
rows, start one ``WebhookDelivery`` workflow per (webhook, event) — id
``<prefix>webhook-delivery/<wh>/<evt>``, REJECT_DUPLICATE so a re-dispatch never re-runs a finished delivery
(WorkflowAlreadyStarted counts as success) — and only then mark the events dispatched and commit. A crash at
any point leaves the rows undispatched and the next batch redoes the same idempotent work; a workflow whose
delivery row was rolled back re-creates it from the outbox (see ``ensure_delivery``).

Subscription-owned webhooks get only the events their owner may see: the matched events are filtered by the
owner's live ``read``/``list`` permission (services/events/visibility.py, the rule polling also applies) before their
delivery rows are written; the delivery activity checks again before every attempt. Plain webhooks (tenant
integrations configured with admin rights) are not filtered.

``run`` is the long-running loop the relay activity executes: it LISTENs on ``scaivault_events`` (a trigger
NOTIFYs on every committed outbox insert, so dispatch starts right after commit; after a notification it waits
EVENT_RELAY_COALESCE_MS so that a write load's commits are dispatched a batch at a time, not one pass per
commit) and sweeps at least every EVENT_RELAY_SWEEP_SECONDS for anything a notification missed. Each sweep also starts the webhook redeliveries
the API re-opened while Temporal was unavailable (``requeue_redeliveries``; migration 0017).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from core.ids import new_id
from core.settings import Settings
from db.engine import Database
from policy.glob import Glob, compile_glob
from repositories.events import outbox as events_repo
from repositories.events import subscriptions as subs_repo
from repositories.events import webhooks as webhooks_repo
from services.events.catalogue import filters_match, type_matches
from services.events.visibility import owner_context, visible
from services.policy_access import PolicyAccessChecker
from services.rotation.routing import add_policy_routes
from workflows.types.events import DELIVERY_WORKFLOW, DeliveryInput

log = logging.getLogger("scaivault.events")

NOTIFY_CHANNEL = "scaivault_events"
SUBSCRIPTION_CHANNEL = "scaivault:subscription-events"
_DELAY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*", re.ASCII)  # fullmatch
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def retry_delays_ms(schedule: str) -> list[int]:
    """``"1m,5m,30m"`` -> ``[60000, 300000, 1800000]``; raises ValueError on a bad entry."""
    out = []
    for part in (p for p in schedule.split(",") if p.strip()):
        m = _DELAY.fullmatch(part)
        if not m:
            raise ValueError(f"WEBHOOK_RETRY_SCHEDULE entry {part.strip()!r} is not like 200ms, 30s, 5m, 2h or 1d")
        out.append(int(float(m.group(1)) * _UNIT_MS[m.group(2)]))
    return out


def delivery_workflow_id(settings: Settings, webhook_id: str, event_id: str) -> str:
    return f"{settings.temporal_task_queue_prefix}webhook-delivery/{webhook_id}/{event_id}"


def relay_workflow_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}events-relay"


def delivery_input(settings: Settings, tenant_id: str, webhook_id: str, event_id: str) -> DeliveryInput:
    return DeliveryInput(tenant_id=tenant_id, webhook_id=webhook_id, event_id=event_id,
                         retry_delays_ms=retry_delays_ms(settings.webhook_retry_schedule),
                         attempt_timeout_seconds=int(settings.webhook_timeout_seconds) + 5,
                         first_attempt_local=True)


# ------------------------------------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> Glob:
    return compile_glob(pattern, "paths")


def paths_match(globs: Sequence[str] | None, path: str | None) -> bool:
    """Subscription path globs. ``None`` (a plain webhook): any path. Path-less events (policies, engines)
    match only a subscription that lists ``**`` (decision)."""
    if globs is None:
        return True
    if path is None:
        return "**" in globs
    return any(_glob(g).match(path) for g in globs)


def _filters(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return orjson.loads(value)  # type: ignore[no-any-return]
    return dict(value or {})


def matches(target: asyncpg.Record | dict[str, Any], env: dict[str, Any]) -> bool:
    return (type_matches(target["events"], env["event_type"]) and paths_match(target["paths"], env.get("path"))
            and filters_match(_filters(target["filters"]), env))


@dataclass
class Fanout:
    deliveries: list[tuple[str, str, str, str, str, bytes]] = field(default_factory=list)
    buffer_rows: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    subs_touched: set[str] = field(default_factory=set)
    envelopes: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> envelope, delivered events


def plan_fanout(rows: Iterable[asyncpg.Record], hooks: Sequence[asyncpg.Record],
                subs: Sequence[asyncpg.Record]) -> Fanout:
    by_tenant_hooks: dict[str, list[asyncpg.Record]] = {}
    for h in hooks:
        by_tenant_hooks.setdefault(h["tenant_id"], []).append(h)
    by_tenant_subs: dict[str, list[asyncpg.Record]] = {}
    for s in subs:
        by_tenant_subs.setdefault(s["tenant_id"], []).append(s)
    plan = Fanout()
    for row in rows:
        tenant = row["tenant_id"]
        hook_list, sub_list = by_tenant_hooks.get(tenant, []), by_tenant_subs.get(tenant, [])
        if not hook_list and not sub_list:
            continue
        env = events_repo.envelope(row)
        body = orjson.dumps(env)
        for h in hook_list:
            if matches(h, env):
                plan.deliveries.append((new_id("del"), tenant, h["id"], row["event_id"], row["event_type"], body))
                plan.envelopes[row["event_id"]] = env
        for s in sub_list:
            if matches(s, env):
                plan.buffer_rows.append((s["id"], row["seq"], tenant, row["event_id"], body.decode()))
                plan.subs_touched.add(s["id"])
    return plan


async def withhold_from_owners(conn: asyncpg.Connection, access: Any, plan: Fanout,
                               hooks: Sequence[asyncpg.Record]) -> int:
    """Drop the planned deliveries of subscription-owned webhooks whose owner may not see the event (live
    ``read``/``list`` on its path, see services/events/visibility.py). Returns how many were dropped."""
    owned = {h["id"]: h for h in hooks if h["kind"] == "subscription"}
    groups: dict[tuple[str, str | None, str | None], list[tuple[str, str]]] = {}
    for d in plan.deliveries:
        hook = owned.get(d[2])
        if hook is not None:
            env = plan.envelopes[d[3]]
            groups.setdefault((d[1], env.get("partner_id"), hook["owner_id"]), []).append((d[2], d[3]))
    if not groups:
        return 0
    allowed: set[tuple[str, str]] = set()
    for (tenant, partner, owner), items in groups.items():
        ctx = await owner_context(conn, tenant, partner, owner) if owner else None
        if ctx is None:
            continue
        flags = await visible(access, ctx, [plan.envelopes[event_id] for _, event_id in items])
        allowed.update(item for item, ok in zip(items, flags, strict=True) if ok)
    before = len(plan.deliveries)
    plan.deliveries = [d for d in plan.deliveries if d[2] not in owned or (d[2], d[3]) in allowed]
    return before - len(plan.deliveries)


# ------------------------------------------------------------------------------------------- relay


class EventRelay:
    """Dispatches outbox batches. One per worker process (holds no per-batch state)."""

    def __init__(self, settings: Settings, db: Database, temporal: Any, redis: Any = None,
                 *, start_concurrency: int = 32, eager_start: bool = True, access: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.temporal = temporal
        self.redis = redis
        #: Path permissions of subscription owners (the API's checker class; 1 s version re-check via Redis).
        self.access = access if access is not None else PolicyAccessChecker(db, redis)
        self.batch_size = settings.event_relay_batch_size
        self._sem = asyncio.Semaphore(start_concurrency)
        self.eager_start = eager_start

    async def dispatch_batch(self, beat: Callable[[], None] | None = None) -> int:
        """Dispatch up to one batch; returns how many events were marked dispatched.

        Three short steps so no lock is held while workflows start (a delivery attempt may need its row at
        once): (1) one transaction claims the batch and writes delivery and buffer rows, idempotently;
        (2) start the workflows; (3) mark the events dispatched. A crash between steps repeats them (no-ops).
        """
        async with self.db.raw() as conn:
            async with conn.transaction():
                rows = await events_repo.claim_undispatched(conn, self.batch_size)
                if not rows:
                    return 0
                tenants = sorted({r["tenant_id"] for r in rows})
                hooks = await webhooks_repo.enabled_for_tenants(conn, tenants)
                subs = await subs_repo.polling_for_tenants(conn, tenants)
                plan = plan_fanout(rows, hooks, subs)
                await withhold_from_owners(conn, self.access, plan, hooks)
                # a rotation policy's webhook_ids (services/rotation/routing.py; owner visibility applies)
                await add_policy_routes(conn, self.access, plan, rows)
                await webhooks_repo.insert_deliveries(conn, plan.deliveries)
                await subs_repo.buffer_insert(conn, plan.buffer_rows)
                await subs_repo.trim(conn, sorted(plan.subs_touched))
            await self._notify_subscribers(plan.subs_touched)
            await self.start_deliveries([(d[1], d[2], d[3]) for d in plan.deliveries], beat)
            await events_repo.mark_dispatched(conn, [r["seq"] for r in rows])
        return len(rows)

    async def start_deliveries(self, items: Sequence[tuple[str, str, str]],
                               beat: Callable[[], None] | None = None) -> None:
        """Start one delivery workflow per (tenant, webhook, event); already started counts as success."""
        if items:
            await asyncio.gather(*(self._start(t, w, e, beat) for t, w, e in items))

    async def _start(self, tenant_id: str, webhook_id: str, event_id: str,
                     beat: Callable[[], None] | None = None) -> None:
        from temporalio.common import WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        from worker.visibility import start_options

        async with self._sem:
            try:
                await self.temporal.start_workflow(
                    DELIVERY_WORKFLOW, delivery_input(self.settings, tenant_id, webhook_id, event_id),
                    id=delivery_workflow_id(self.settings, webhook_id, event_id),
                    task_queue=self.settings.task_queue("events"),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    # The relay runs inside a worker polling this queue, so the server may hand the first
                    # workflow task straight back in the start response (no matching round trip). The SDK
                    # falls back to a normal start when no slot is free or the server declines.
                    request_eager_start=self.eager_start,
                    **start_options(self.settings, area="delivery", tenant_id=tenant_id, resource_id=webhook_id,
                                    summary=f"webhook {webhook_id} delivery of event {event_id}"),
                )
            except WorkflowAlreadyStartedError:
                pass
            if beat is not None:
                beat()

    async def requeue_redeliveries(self) -> int:
        """Start the redeliveries the API re-opened but could not hand to Temporal (it answered 503 and left
        ``redeliver_requested_at`` set): signal-with-start each one's workflow, then clear the stamp. Only
        requests older than the API's own Temporal deadline are taken, so an API call still in flight is not
        doubled. A Temporal failure leaves the stamps for the next sweep."""
        older = self.settings.temporal_rpc_timeout_seconds + 2.0
        async with self.db.raw() as conn:
            rows = await webhooks_repo.stranded_redeliveries(conn, older_than_seconds=older,
                                                             limit=self.batch_size)
        for row in rows:
            await start_redelivery(self.temporal, self.settings, row["tenant_id"], row["webhook_id"],
                                   row["event_id"])
            async with self.db.raw() as conn:
                await webhooks_repo.clear_redelivery_request(conn, row["id"], row["redeliver_requested_at"])
        if rows:
            log.info("requeued stranded webhook redeliveries", extra={"count": len(rows)})
        return len(rows)

    async def _notify_subscribers(self, sub_ids: set[str]) -> None:
        if not sub_ids or self.redis is None:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for sid in sub_ids:
                pipe.publish(SUBSCRIPTION_CHANNEL, sid)
            await pipe.execute()
        except Exception as exc:  # pollers re-check the buffer periodically; Redis is only a wake-up
            log.warning("subscription wake-up publish failed", extra={"error": str(exc)})

    async def drain(self, beat: Callable[[int], None] | None = None) -> int:
        """Dispatch batches until the outbox has nothing undispatched left."""
        total = 0
        while True:
            tick: Callable[[], None] | None = None
            if beat is not None:
                tick = functools.partial(beat, total)
            n = await self.dispatch_batch(tick)
            total += n
            if beat is not None:
                beat(total)
            if n < self.batch_size:
                return total

    async def run(self, run_seconds: float, beat: Callable[[int], None]) -> int:
        """LISTEN + sweep loop for ``run_seconds``; ``beat(total)`` is called at least every sweep interval."""
        wake = asyncio.Event()
        listener = await asyncpg.connect(self.settings.asyncpg_dsn, server_settings={
            "application_name": "scaivault-event-relay"})
        await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
        deadline = time.monotonic() + run_seconds
        total = 0
        sweep = self.settings.event_relay_sweep_seconds
        coalesce = self.settings.event_relay_coalesce_ms / 1000
        requeued_at = 0.0
        try:
            while True:
                wake.clear()
                base = total
                total = base + await self.drain(functools.partial(_offset_beat, beat, base))
                if time.monotonic() - requeued_at >= sweep:  # each sweep, not each commit notification
                    await self.requeue_redeliveries()
                    requeued_at = time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return total
                try:
                    await asyncio.wait_for(wake.wait(), timeout=min(sweep, remaining))
                    if coalesce > 0:  # under a write load, gather the commits of the next moments into one pass
                        await asyncio.sleep(min(coalesce, max(0.0, deadline - time.monotonic())))
                except TimeoutError:
                    pass
                beat(total)
        finally:
            await listener.close(timeout=5)


def _offset_beat(beat: Callable[[int], None], base: int, n: int) -> None:
    beat(base + n)


async def ensure_delivery(conn: asyncpg.Connection, tenant_id: str, webhook_id: str, event_id: str) -> bool:
    """Re-create a delivery row from the outbox (its dispatch transaction rolled back after the workflow
    started). False when the event or the webhook no longer exists."""
    row = await events_repo.get(conn, tenant_id, event_id)
    hook = await webhooks_repo.get(conn, tenant_id, webhook_id, kind=None)
    if row is None or hook is None:
        return False
    await webhooks_repo.insert_delivery(conn, id=new_id("del"), tenant_id=tenant_id, webhook_id=webhook_id,
                                        event_id=event_id, event_type=row["event_type"],
                                        body=orjson.dumps(events_repo.envelope(row)))
    return True


def next_attempt_delay(delay_ms: int | None) -> timedelta | None:
    return None if delay_ms is None else timedelta(milliseconds=delay_ms)


async def start_redelivery(client: Any, settings: Settings, tenant_id: str, webhook_id: str, event_id: str,
                           rpc_timeout: timedelta | None = None) -> None:
    """Signal-with-start a delivery's workflow with ``redeliver``: a running one retries now, a finished one
    (dead-lettered, or delivered and being replayed) starts a fresh retry schedule."""
    from temporalio.common import WorkflowIDReusePolicy

    from worker.visibility import start_options
    from workflows.types.events import REDELIVER_SIGNAL

    await client.start_workflow(
        DELIVERY_WORKFLOW, delivery_input(settings, tenant_id, webhook_id, event_id),
        id=delivery_workflow_id(settings, webhook_id, event_id), task_queue=settings.task_queue("events"),
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, start_signal=REDELIVER_SIGNAL,
        rpc_timeout=rpc_timeout,
        **start_options(settings, area="delivery", tenant_id=tenant_id, resource_id=webhook_id,
                        summary=f"webhook {webhook_id} redelivery of event {event_id}"),
    )


async def ensure_relay(client: Any, settings: Settings) -> None:
    """Start the long-running relay workflow unless it already runs (called at every worker start)."""
    from temporalio.common import WorkflowIDConflictPolicy

    from worker.visibility import start_options
    from workflows.types.events import RELAY_WORKFLOW, RelayInput

    await client.start_workflow(
        RELAY_WORKFLOW,
        RelayInput(run_seconds=settings.event_relay_run_seconds,
                   heartbeat_seconds=settings.event_relay_heartbeat_seconds),
        id=relay_workflow_id(settings), task_queue=settings.task_queue("events"),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **start_options(settings, area="relay", summary="outbox relay: dispatches events to webhooks"),
    )
