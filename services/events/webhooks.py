"""Webhook rules: CRUD (secret sealed, never returned), signing-secret rotation, delivery log, test send,
redelivery. Spec lifecycle.md §5.3-5.5."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from api.context import RequestContext
from api.state import AppState
from core.cursor import decode_id_cursor, encode_id_cursor
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from repositories.events import webhooks as repo
from repositories.events.outbox import iso
from services.events import webhook_urls
from services.events.catalogue import validate_event_types
from services.events.relay import start_redelivery
from services.events.webhook_secrets import SecretBox

MIN_SECRET_CHARS = 16
MAX_PREVIOUS_SECRET_TTL = timedelta(days=30)
TEST_EVENT_TYPE = "webhook.test"


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else iso(dt)


def _filters(value: Any) -> dict[str, Any]:
    return orjson.loads(value) if isinstance(value, str) else dict(value or {})


def public(row: Any) -> dict[str, Any]:
    enabled = bool(row["enabled"])
    out: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "url": row["url"], "events": list(row["events"]),
        "filters": _filters(row["filters"]), "enabled": enabled,
        "status": row["status"] if enabled else "disabled", "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }
    expires = row["previous_secret_expires_at"]
    if expires is not None and expires > datetime.now(UTC):
        out["previous_secret_expires_at"] = _iso(expires)
    return out


def public_delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "event_id": row["event_id"], "event_type": row["event_type"],
        "timestamp": _iso(row["updated_at"]), "status": row["status"], "attempts": row["attempts"],
        "response_code": row["response_code"], "response_body": row["response_body"],
        "duration_ms": row["duration_ms"], "error": row["error"], "next_attempt_at": _iso(row["next_attempt_at"]),
        "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
        "delivered_at": _iso(row["delivered_at"]),
    }


def check_secret(secret: str, field: str = "secret") -> None:
    if len(secret) < MIN_SECRET_CHARS:
        raise AppError("validation_error", f"{field} must be at least {MIN_SECRET_CHARS} characters "
                       "(32 or more recommended)", {"fields": [{"field": field, "message": "too short"}]})


def clean_filters(filters: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (filters or {}).items() if v not in (None, "", [], {})}


async def create(state: AppState, ctx: RequestContext, *, name: str, url: str, secret: str, events: list[str],
                 filters: dict[str, Any] | None, enabled: bool) -> dict[str, Any]:
    events = validate_event_types(events)
    check_secret(secret)
    await webhook_urls.check(url, allow_private=state.settings.allow_private_webhooks)
    webhook_id = new_id("wh")
    sealed = SecretBox(state.settings).seal(ctx.tenant_id, webhook_id, secret)
    async with state.db.raw() as conn, conn.transaction():
        row = await repo.insert(conn, id=webhook_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                                name=name, url=url, secret_enc=sealed, events=events,
                                filters=clean_filters(filters), enabled=enabled,
                                created_by=ctx.principal.identity_id)
        await state.get("audit").record(ctx, action="webhook_create", resource_type="webhook",
                                        resource_id=webhook_id, conn=conn)
    return public(row)


async def get_row(state: AppState, ctx: RequestContext, webhook_id: str) -> Any:
    async with state.db.raw() as conn:
        row = await repo.get(conn, ctx.tenant_id, webhook_id)
    if row is None:
        raise AppError("webhook_not_found", f"webhook {webhook_id!r} not found", {"webhook_id": webhook_id})
    return row


async def get(state: AppState, ctx: RequestContext, webhook_id: str) -> dict[str, Any]:
    async with state.db.raw() as conn:
        row = await repo.get(conn, ctx.tenant_id, webhook_id)
        if row is None:
            raise AppError("webhook_not_found", f"webhook {webhook_id!r} not found", {"webhook_id": webhook_id})
        stats = await repo.stats_24h(conn, ctx.tenant_id, webhook_id)
        last = await repo.last_delivery(conn, ctx.tenant_id, webhook_id)
    out = public(row)
    finished = int(stats["finished"] or 0)
    out["statistics"] = {
        "deliveries_24h": finished,
        "success_rate_24h": round(int(stats["succeeded"] or 0) / finished, 4) if finished else None,
        "avg_latency_ms": round(float(stats["avg_ms"]), 1) if stats["avg_ms"] is not None else None,
    }
    out["last_delivery"] = None if last is None else {
        "id": last["id"], "timestamp": _iso(last["updated_at"]), "status": last["status"],
        "response_code": last["response_code"]}
    return out


async def list_webhooks(state: AppState, ctx: RequestContext, *, cursor: str | None,
                        limit: int) -> dict[str, Any]:
    after = decode_cursor(cursor, "wh_")
    async with state.db.raw() as conn:
        rows = await repo.list_for(conn, ctx.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"webhooks": [public(r) for r in rows], "cursor": encode_cursor(rows[-1]["id"]) if more else None,
            "has_more": more}


async def update(state: AppState, ctx: RequestContext, webhook_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """PATCH: any of name, url, events, filters, enabled, secret (+ previous_secret_ttl for rotation)."""
    changes: dict[str, Any] = {}
    for key in ("name",):
        if fields.get(key) is not None:
            changes[key] = fields[key]
    if fields.get("events") is not None:
        changes["events"] = validate_event_types(fields["events"])
    if "filters" in fields:
        changes["filters"] = clean_filters(fields["filters"])
    if fields.get("url") is not None:
        await webhook_urls.check(fields["url"], allow_private=state.settings.allow_private_webhooks)
        changes["url"] = fields["url"]
    if fields.get("enabled") is not None:
        changes["enabled"] = bool(fields["enabled"])
        changes["status"] = "healthy" if fields["enabled"] else "disabled"
        changes["consecutive_failures"] = 0
    ttl = None
    if fields.get("previous_secret_ttl") is not None:
        if fields.get("secret") is None:
            raise AppError("validation_error", "previous_secret_ttl needs a new secret",
                           {"fields": [{"field": "previous_secret_ttl", "message": "only valid with secret"}]})
        ttl = parse_duration(fields["previous_secret_ttl"], field="previous_secret_ttl")
        if ttl > MAX_PREVIOUS_SECRET_TTL:
            raise AppError("invalid_duration", "previous_secret_ttl must be at most 30d",
                           {"field": "previous_secret_ttl"})
    async with state.db.raw() as conn, conn.transaction():
        row = await repo.get(conn, ctx.tenant_id, webhook_id, for_update=True)
        if row is None:
            raise AppError("webhook_not_found", f"webhook {webhook_id!r} not found", {"webhook_id": webhook_id})
        if fields.get("secret") is not None:
            check_secret(fields["secret"])
            changes.update(_rotation(state, ctx, webhook_id, fields["secret"], ttl,
                                     await repo.secrets_of(conn, ctx.tenant_id, webhook_id)))
        if changes:
            row = await repo.update(conn, ctx.tenant_id, webhook_id, changes)
        await state.get("audit").record(ctx, action="webhook_update", resource_type="webhook",
                                        resource_id=webhook_id, conn=conn,
                                        extra={"fields": sorted(k for k in fields if k != "secret")
                                               + (["secret"] if "secret" in fields else [])})
    return public(row)


def _rotation(state: AppState, ctx: RequestContext, webhook_id: str, secret: str, ttl: timedelta | None,
              current: Any) -> dict[str, Any]:
    """New secret signs from now on; with a TTL the old one stays recorded as previous until it lapses."""
    out: dict[str, Any] = {"secret_enc": SecretBox(state.settings).seal(ctx.tenant_id, webhook_id, secret)}
    if ttl is not None and ttl.total_seconds() > 0:
        out["previous_secret_enc"] = current["secret_enc"]
        out["previous_secret_expires_at"] = datetime.now(UTC) + ttl
    else:
        out["previous_secret_enc"] = None
        out["previous_secret_expires_at"] = None
    return out


async def delete(state: AppState, ctx: RequestContext, webhook_id: str) -> None:
    async with state.db.raw() as conn, conn.transaction():
        if not await repo.delete(conn, ctx.tenant_id, webhook_id):
            raise AppError("webhook_not_found", f"webhook {webhook_id!r} not found", {"webhook_id": webhook_id})
        await state.get("audit").record(ctx, action="webhook_delete", resource_type="webhook",
                                        resource_id=webhook_id, conn=conn)


async def list_deliveries(state: AppState, ctx: RequestContext, webhook_id: str, *, status: str | None,
                          cursor: str | None, limit: int) -> dict[str, Any]:
    before = decode_cursor(cursor, "del_")
    async with state.db.raw() as conn:
        if await repo.get(conn, ctx.tenant_id, webhook_id) is None:
            raise AppError("webhook_not_found", f"webhook {webhook_id!r} not found", {"webhook_id": webhook_id})
        rows = await repo.list_deliveries(conn, ctx.tenant_id, webhook_id, status=status, before=before,
                                          limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"deliveries": [public_delivery(r) for r in rows],
            "cursor": encode_cursor(rows[-1]["id"]) if more else None, "has_more": more}


async def send_test(state: AppState, ctx: RequestContext, webhook_id: str) -> dict[str, Any]:
    """Send a synthetic ``webhook.test`` event now, synchronously, and log it as a delivery."""
    box = SecretBox(state.settings)
    async with state.db.raw() as conn:
        row = await repo.get(conn, ctx.tenant_id, webhook_id)
        if row is None:
            raise AppError("webhook_not_found", f"webhook {webhook_id!r} not found", {"webhook_id": webhook_id})
        sealed = await repo.secrets_of(conn, ctx.tenant_id, webhook_id)
        assert sealed is not None
        secret = box.open(ctx.tenant_id, webhook_id, sealed["secret_enc"])
    event_id, delivery_id = new_id("evt"), new_id("del")
    envelope = {
        "event_id": event_id, "event_type": TEST_EVENT_TYPE, "timestamp": iso(datetime.now(UTC)),
        "tenant_id": ctx.tenant_id, "partner_id": ctx.partner_id, "identity_id": ctx.principal.identity_id,
        "data": {"webhook_id": webhook_id, "message": "ScaiVault test event"}, "request_id": ctx.request_id,
    }
    body = orjson.dumps(envelope)
    res = await state.get("webhook_sender").send(row["url"], secret, body, event_id=event_id,
                                                 event_type=TEST_EVENT_TYPE)
    status = "success" if res.ok else "failed"
    async with state.db.raw() as conn, conn.transaction():
        await repo.insert_delivery(conn, id=delivery_id, tenant_id=ctx.tenant_id, webhook_id=webhook_id,
                                   event_id=event_id, event_type=TEST_EVENT_TYPE, body=body)
        await repo.record_attempt(conn, delivery_id, status=status, response_code=res.response_code,
                                  response_body=res.response_body, duration_ms=res.duration_ms, error=res.error,
                                  next_attempt_at=None)
        await state.get("audit").record(ctx, action="webhook_delivery", resource_type="webhook",
                                        resource_id=webhook_id, success=res.ok, conn=conn,
                                        extra={"delivery_id": delivery_id, "test": True})
    out: dict[str, Any] = {"delivery_id": delivery_id, "event_id": event_id, "status": status,
                           "response_code": res.response_code, "duration_ms": res.duration_ms}
    if res.error:
        out["error"] = res.error
    return out


async def redeliver(state: AppState, ctx: RequestContext, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """Re-open a delivery and signal-with-start its workflow: a running one retries now, a finished one
    (dead-lettered, or delivered and being replayed) starts a fresh retry schedule."""
    if state.temporal is None:
        raise AppError("service_unavailable", "the workflow service is not reachable")
    async with state.db.raw() as conn, conn.transaction():
        row = await repo.get_delivery(conn, ctx.tenant_id, webhook_id, delivery_id)
        if row is None:
            raise AppError("delivery_not_found", f"delivery {delivery_id!r} not found",
                           {"webhook_id": webhook_id, "delivery_id": delivery_id})
        if row["event_type"] == TEST_EVENT_TYPE:
            raise AppError("invalid_request", "test deliveries cannot be redelivered; send a new test")
        stamp = await repo.reopen_delivery(conn, ctx.tenant_id, delivery_id)
        await state.get("audit").record(ctx, action="webhook_redeliver", resource_type="webhook",
                                        resource_id=webhook_id, conn=conn, extra={"delivery_id": delivery_id})
    from worker.client import with_deadline

    s = state.settings
    temporal = state.temporal
    # Within TEMPORAL_RPC_TIMEOUT_SECONDS, else 503 naming Temporal; the delivery stays re-opened (pending) with
    # its redelivery request stamped, and the outbox relay's sweep starts it once Temporal is back.
    await with_deadline(s, lambda rpc_timeout: start_redelivery(
        temporal, s, ctx.tenant_id, webhook_id, row["event_id"], rpc_timeout), action="webhook.redeliver")
    async with state.db.raw() as conn:
        await repo.clear_redelivery_request(conn, delivery_id, stamp)
    return {"delivery_id": delivery_id, "event_id": row["event_id"], "status": "pending"}


def encode_cursor(value: str) -> str:
    return encode_id_cursor(value) or ""


def decode_cursor(value: str | None, prefix: str) -> str | None:
    """The id in a list cursor (core/cursor.py: strict base64url, a ``prefix`` id PostgreSQL can hold)."""
    return decode_id_cursor(value, prefix)
