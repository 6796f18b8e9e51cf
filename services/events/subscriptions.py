"""Subscriptions (spec lifecycle.md §5.6): path-scoped event feeds owned by their creator, delivered by webhook
or by long-polling with acknowledgements.

Decisions:
* Owner only: every operation on a subscription answers 404 ``subscription_not_found`` to anyone but the
  identity that created it (the list shows the caller's own).
* ``delivery.type = webhook``: the subscription owns an internal webhook row (kind ``subscription``, not listed
  under /v1/webhooks) carrying its paths, events and filters; delivery, signing (same headers as §5.4),
  retries and dead-lettering are exactly those of webhooks.
* ``delivery.type = polling``: the relay copies matching events into the subscription's buffer. A poll
  returns un-acked events oldest first (after ``since_event_id`` when given); un-acked events come back on the
  next poll (at-least-once). When the buffer exceeds ``buffer_size`` the oldest are dropped and counted in
  ``dropped_events``. Events on paths the owner may neither ``read`` nor ``list`` (access policies, checked at
  poll time) are discarded instead of returned.
* Webhook delivery follows the same rule (services/events/visibility.py): the relay delivers an event only if the
  owner may see it at fan-out, and the delivery activity checks again before each attempt.
* Path-less events (policies, engines) match only subscriptions whose paths include ``**``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from api.context import RequestContext
from api.state import AppState
from core.background import cancel_and_wait
from core.errors import AppError
from core.ids import new_id
from policy.glob import compile_glob
from repositories.events import subscriptions as repo
from repositories.events import webhooks as webhooks_repo
from repositories.events.outbox import iso
from services.events import webhook_urls
from services.events.catalogue import validate_event_types
from services.events.relay import SUBSCRIPTION_CHANNEL
from services.events.visibility import visible
from services.events.webhook_secrets import SecretBox
from services.events.webhooks import check_secret, clean_filters, decode_cursor, encode_cursor

log = logging.getLogger("scaivault.events")
MAX_BUFFER = 100_000
MAX_POLL_TIMEOUT = 60


def _not_found(sub_id: str) -> AppError:
    return AppError("subscription_not_found", f"subscription {sub_id!r} not found", {"subscription_id": sub_id})


def public(row: Any, hook: Any = None) -> dict[str, Any]:
    delivery: dict[str, Any] = {"type": row["delivery_type"]}
    if row["delivery_type"] == "polling":
        delivery["buffer_size"] = row["buffer_size"]
    elif hook is not None:
        delivery["url"] = hook["url"]
        delivery["status"] = hook["status"]
    filters = row["filters"]
    return {
        "id": row["id"], "name": row["name"], "status": row["status"], "identity_id": row["identity_id"],
        "paths": list(row["paths"]), "events": list(row["events"]),
        "filters": orjson.loads(filters) if isinstance(filters, str) else dict(filters or {}),
        "delivery": delivery, "dropped_events": int(row["dropped_events"]), "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def validate_paths(paths: list[str]) -> list[str]:
    if not paths:
        raise AppError("validation_error", "paths must list at least one glob",
                       {"fields": [{"field": "paths", "message": "at least one path glob is required"}]})
    for i, p in enumerate(paths):
        compile_glob(p, f"paths[{i}]")
    return list(dict.fromkeys(paths))


def _delivery_fields(delivery: dict[str, Any]) -> tuple[str, str | None, str | None, int]:
    kind = delivery.get("type")
    if kind not in ("webhook", "polling"):
        raise AppError("validation_error", "delivery.type must be webhook or polling",
                       {"fields": [{"field": "delivery.type", "message": "webhook | polling"}]})
    size = delivery.get("buffer_size") or 1000
    if not 1 <= int(size) <= MAX_BUFFER:
        raise AppError("validation_error", f"delivery.buffer_size must be 1..{MAX_BUFFER}",
                       {"fields": [{"field": "delivery.buffer_size", "message": "out of range"}]})
    url, secret = delivery.get("url"), delivery.get("secret")
    if kind == "webhook":
        missing = [f"delivery.{k}" for k, v in (("url", url), ("secret", secret)) if not v]
        if missing:
            raise AppError("validation_error", "webhook delivery needs url and secret",
                           {"fields": [{"field": f, "message": "required for webhook delivery"} for f in missing]})
        check_secret(str(secret), "delivery.secret")
    return kind, url, secret, int(size)


async def _create_hook(state: AppState, ctx: RequestContext, conn: Any, sub_id: str, name: str, url: str,
                       secret: str, paths: list[str], events: list[str], filters: dict[str, Any]) -> Any:
    hook_id = new_id("wh")
    return await webhooks_repo.insert(
        conn, id=hook_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, name=f"subscription:{name}",
        url=url, secret_enc=SecretBox(state.settings).seal(ctx.tenant_id, hook_id, secret), events=events,
        filters=filters, enabled=True, created_by=ctx.principal.identity_id, kind="subscription",
        subscription_id=sub_id, paths=paths)


async def create(state: AppState, ctx: RequestContext, *, name: str, paths: list[str], events: list[str],
                 delivery: dict[str, Any], filters: dict[str, Any] | None) -> dict[str, Any]:
    paths = validate_paths(paths)
    events = validate_event_types(events)
    kind, url, secret, size = _delivery_fields(delivery)
    if kind == "webhook":
        await webhook_urls.check(str(url), allow_private=state.settings.allow_private_webhooks)
    filters = clean_filters(filters)
    sub_id = new_id("sub")
    async with state.db.raw() as conn, conn.transaction():
        hook = None
        if kind == "webhook":
            hook = await _create_hook(state, ctx, conn, sub_id, name, str(url), str(secret), paths, events, filters)
        row = await repo.insert(conn, id=sub_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                                identity_id=ctx.principal.identity_id, name=name, paths=paths, events=events,
                                filters=filters, delivery_type=kind, buffer_size=size,
                                webhook_id=hook["id"] if hook else None)
        await state.get("audit").record(ctx, action="subscription_create", resource_type="subscription",
                                        resource_id=sub_id, conn=conn)
    return public(row, hook)


async def _owned(conn: Any, ctx: RequestContext, sub_id: str, *, for_update: bool = False) -> Any:
    row = await repo.get(conn, ctx.tenant_id, sub_id, for_update=for_update)
    if row is None or row["identity_id"] != ctx.principal.identity_id:
        raise _not_found(sub_id)
    return row


async def get(state: AppState, ctx: RequestContext, sub_id: str) -> dict[str, Any]:
    async with state.db.raw() as conn:
        row = await _owned(conn, ctx, sub_id)
        hook = await webhooks_repo.get(conn, ctx.tenant_id, row["webhook_id"], kind=None) if row["webhook_id"] else None
        out = public(row, hook)
        if row["delivery_type"] == "polling":
            out["buffered_events"] = await repo.buffered(conn, ctx.tenant_id, sub_id)
    return out


async def list_subscriptions(state: AppState, ctx: RequestContext, *, cursor: str | None,
                             limit: int) -> dict[str, Any]:
    after = decode_cursor(cursor, "sub_")
    async with state.db.raw() as conn:
        rows = await repo.list_for(conn, ctx.tenant_id, ctx.principal.identity_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"subscriptions": [public(r) for r in rows],
            "cursor": encode_cursor(rows[-1]["id"]) if more else None, "has_more": more}


async def update(state: AppState, ctx: RequestContext, sub_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if fields.get("name") is not None:
        changes["name"] = fields["name"]
    if fields.get("paths") is not None:
        changes["paths"] = validate_paths(fields["paths"])
    if fields.get("events") is not None:
        changes["events"] = validate_event_types(fields["events"])
    if "filters" in fields:
        changes["filters"] = clean_filters(fields["filters"])
    delivery = fields.get("delivery")
    async with state.db.raw() as conn, conn.transaction():
        row = await _owned(conn, ctx, sub_id, for_update=True)
        if delivery is not None:
            changes.update(await _change_delivery(state, ctx, conn, row, delivery, changes))
        if changes:
            row = await repo.update(conn, ctx.tenant_id, sub_id, changes)
        hook = None
        if row["webhook_id"]:
            hook_changes: dict[str, Any] = {k: changes[k] for k in ("paths", "events", "filters") if k in changes}
            hook = (await webhooks_repo.update(conn, ctx.tenant_id, row["webhook_id"], hook_changes) if hook_changes
                    else await webhooks_repo.get(conn, ctx.tenant_id, row["webhook_id"], kind=None))
        await state.get("audit").record(ctx, action="subscription_update", resource_type="subscription",
                                        resource_id=sub_id, conn=conn)
    return public(row, hook)


async def _change_delivery(state: AppState, ctx: RequestContext, conn: Any, row: Any, delivery: dict[str, Any],
                           changes: dict[str, Any]) -> dict[str, Any]:
    kind = delivery.get("type") or row["delivery_type"]
    merged = {"buffer_size": row["buffer_size"], **delivery, "type": kind}
    if kind == "webhook" and row["webhook_id"] and not delivery.get("secret"):
        merged["secret"] = "x" * 32  # unchanged secret: only validate the rest
    kind, url, secret, size = _delivery_fields(merged)
    out: dict[str, Any] = {"delivery_type": kind, "buffer_size": size}
    if kind == "polling":
        if row["webhook_id"]:
            await webhooks_repo.delete(conn, ctx.tenant_id, row["webhook_id"], kind="subscription")
            out["webhook_id"] = None
        return out
    if url:
        await webhook_urls.check(str(url), allow_private=state.settings.allow_private_webhooks)
    if not row["webhook_id"]:
        hook = await _create_hook(state, ctx, conn, row["id"], row["name"], str(url), str(secret),
                                  changes.get("paths", list(row["paths"])), changes.get("events", list(row["events"])),
                                  changes.get("filters", dict(orjson.loads(row["filters"]) if isinstance(row["filters"], str) else row["filters"])))
        out["webhook_id"] = hook["id"]
        return out
    hook_changes: dict[str, Any] = {}
    if delivery.get("url"):
        hook_changes["url"] = delivery["url"]
    if delivery.get("secret"):
        hook_changes["secret_enc"] = SecretBox(state.settings).seal(ctx.tenant_id, row["webhook_id"], str(secret))
    if hook_changes:
        await webhooks_repo.update(conn, ctx.tenant_id, row["webhook_id"], hook_changes)
    return out


async def delete(state: AppState, ctx: RequestContext, sub_id: str) -> None:
    async with state.db.raw() as conn, conn.transaction():
        row = await _owned(conn, ctx, sub_id, for_update=True)
        await repo.delete(conn, ctx.tenant_id, sub_id)
        if row["webhook_id"]:
            await webhooks_repo.delete(conn, ctx.tenant_id, row["webhook_id"], kind="subscription")
        await state.get("audit").record(ctx, action="subscription_delete", resource_type="subscription",
                                        resource_id=sub_id, conn=conn)


async def poll(state: AppState, ctx: RequestContext, sub_id: str, *, wait_seconds: float,
               since_event_id: str | None, max_events: int) -> dict[str, Any]:
    """Long-poll: return as soon as un-acked events exist, else after ``wait_seconds``."""
    async with state.db.raw() as conn:
        row = await _owned(conn, ctx, sub_id)
        if row["delivery_type"] != "polling":
            raise AppError("invalid_request", "this subscription delivers by webhook; it cannot be polled",
                           {"subscription_id": sub_id, "delivery_type": row["delivery_type"]})
        after = 0
        if since_event_id:
            after = await repo.seq_of(conn, ctx.tenant_id, sub_id, since_event_id) or 0
    notifier: SubscriptionNotifier | None = state.components.get("subscription_notifier")
    recheck = state.settings.subscription_poll_recheck_seconds
    deadline = time.monotonic() + min(max(wait_seconds, 0), MAX_POLL_TIMEOUT)
    while True:
        with (notifier.waiter(sub_id) if notifier else _no_waiter()) as wake:
            async with state.db.raw() as conn:
                rows = await repo.fetch_buffer(conn, ctx.tenant_id, sub_id, after_seq=after, limit=max_events + 1)
                if rows:
                    return await _poll_result(state, ctx, conn, sub_id, rows, max_events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"events": [], "has_more": False}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(remaining, recheck))


async def _poll_result(state: AppState, ctx: RequestContext, conn: Any, sub_id: str, rows: list[Any],
                       max_events: int) -> dict[str, Any]:
    more = len(rows) > max_events
    envs = [orjson.loads(r["envelope"]) if isinstance(r["envelope"], str) else r["envelope"] for r in rows[:max_events]]
    flags = await visible(state.get("access"), ctx, envs)
    denied = [e["event_id"] for e, ok in zip(envs, flags, strict=True) if not ok]
    if denied:
        await repo.ack(conn, ctx.tenant_id, sub_id, denied)
    out = [e for e, ok in zip(envs, flags, strict=True) if ok]
    if out:
        await state.get("audit").record(ctx, action="subscription_event", resource_type="subscription",
                                        resource_id=sub_id, extra={"events": len(out)})
    return {"events": out, "has_more": more}


async def ack(state: AppState, ctx: RequestContext, sub_id: str, event_ids: list[str]) -> dict[str, Any]:
    async with state.db.raw() as conn:
        await _owned(conn, ctx, sub_id)
        n = await repo.ack(conn, ctx.tenant_id, sub_id, event_ids)
    return {"acknowledged": n}


@contextlib.contextmanager
def _no_waiter() -> Iterator[asyncio.Event]:
    yield asyncio.Event()


class SubscriptionNotifier:
    """One Redis pub/sub connection per API process; wakes the long-polls of a subscription when the relay
    buffered events for it. Polls also re-read the buffer every SUBSCRIPTION_POLL_RECHECK_SECONDS, so a lost
    message (or Redis being down) costs latency, never events."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def waiter(self, sub_id: str) -> Iterator[asyncio.Event]:
        ev = asyncio.Event()
        self._waiters.setdefault(sub_id, set()).add(ev)
        try:
            yield ev
        finally:
            group = self._waiters.get(sub_id)
            if group is not None:
                group.discard(ev)
                if not group:
                    self._waiters.pop(sub_id, None)

    def wake(self, sub_id: str) -> None:
        for ev in self._waiters.get(sub_id, ()):
            ev.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="subscription-notifier")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(SUBSCRIPTION_CHANNEL)
                try:
                    async for msg in pubsub.listen():
                        data = msg.get("data")
                        if data:
                            self.wake(data.decode() if isinstance(data, bytes) else str(data))
                finally:
                    await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("subscription notifier reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(1)
