"""SQL for webhooks and their delivery log. Every query takes the tenant explicitly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

_COLS = ("id, tenant_id, partner_id, kind, subscription_id, name, url, events, paths, filters, enabled, status,"
         " consecutive_failures, created_by, created_at, updated_at, previous_secret_expires_at")
_DCOLS = ("id, tenant_id, webhook_id, event_id, event_type, status, attempts, response_code, response_body,"
          " duration_ms, error, next_attempt_at, created_at, updated_at, delivered_at")
UPDATABLE = frozenset({"name", "url", "events", "paths", "filters", "enabled", "status", "secret_enc",
                       "previous_secret_enc", "previous_secret_expires_at", "consecutive_failures"})


def _jsonb(value: Any) -> str:
    return orjson.dumps(value).decode()


# ------------------------------------------------------------------------------------------- webhooks


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, name: str,
                 url: str, secret_enc: bytes, events: list[str], filters: dict[str, Any], enabled: bool,
                 created_by: str | None, kind: str = "webhook", subscription_id: str | None = None,
                 paths: list[str] | None = None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO webhooks (id, tenant_id, partner_id, kind, subscription_id, name, url, secret_enc, events,"
        " paths, filters, enabled, status, created_by)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11::jsonb,$12, CASE WHEN $12 THEN 'healthy' ELSE 'disabled' END,"
        f" $13) RETURNING {_COLS}",
        id, tenant_id, partner_id, kind, subscription_id, name, url, secret_enc, events, paths, _jsonb(filters),
        enabled, created_by,
    )


async def get(conn: asyncpg.Connection, tenant_id: str, webhook_id: str, *, kind: str | None = "webhook",
              for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLS} FROM webhooks WHERE tenant_id = $1 AND id = $2 AND ($3::text IS NULL OR kind = $3){lock}",
        tenant_id, webhook_id, kind,
    )


async def list_for(conn: asyncpg.Connection, tenant_id: str, *, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM webhooks WHERE tenant_id = $1 AND kind = 'webhook'"
        " AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
        tenant_id, after, limit,
    )


async def update(conn: asyncpg.Connection, tenant_id: str, webhook_id: str, changes: dict[str, Any]) -> asyncpg.Record | None:
    bad = set(changes) - UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    sets, args = [], [tenant_id, webhook_id]
    for col, value in changes.items():
        args.append(_jsonb(value) if col == "filters" else value)
        sets.append(f"{col} = ${len(args)}" + ("::jsonb" if col == "filters" else ""))
    sets.append("updated_at = now()")
    return await conn.fetchrow(
        f"UPDATE webhooks SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {_COLS}", *args
    )


async def delete(conn: asyncpg.Connection, tenant_id: str, webhook_id: str, *, kind: str = "webhook") -> bool:
    status = await conn.execute("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2 AND kind = $3",
                                tenant_id, webhook_id, kind)
    return status.endswith(" 1")


async def stats_24h(conn: asyncpg.Connection, tenant_id: str, webhook_id: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status <> 'pending') AS finished,"
        " count(*) FILTER (WHERE status = 'success') AS succeeded, avg(duration_ms) AS avg_ms"
        " FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND updated_at > now() - interval '24 hours'",
        tenant_id, webhook_id,
    )


async def last_delivery(conn: asyncpg.Connection, tenant_id: str, webhook_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, updated_at, status, response_code FROM webhook_deliveries"
        " WHERE tenant_id = $1 AND webhook_id = $2 AND attempts > 0 ORDER BY updated_at DESC LIMIT 1",
        tenant_id, webhook_id,
    )


async def enabled_for_tenants(conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The enabled webhooks (including subscription-owned ones) of these tenants, for fan-out matching.
    ``owner_id``: the owning subscription's identity (None for a plain webhook)."""
    return await conn.fetch(
        "SELECT w.id, w.tenant_id, w.events, w.paths, w.filters, w.kind, s.identity_id AS owner_id FROM webhooks w"
        " LEFT JOIN subscriptions s ON s.id = w.subscription_id AND s.tenant_id = w.tenant_id"
        " WHERE w.tenant_id = ANY($1::text[]) AND w.enabled",
        list(tenant_ids),
    )


async def secrets_of(conn: asyncpg.Connection, tenant_id: str, webhook_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, secret_enc, previous_secret_enc, previous_secret_expires_at FROM webhooks"
        " WHERE tenant_id = $1 AND id = $2", tenant_id, webhook_id,
    )


async def record_health(conn: asyncpg.Connection, webhook_id: str, *, success: bool, dead: bool,
                        degraded_after: int, failing_after: int) -> None:
    """Track consecutive failures; status healthy/degraded/failing (disabled webhooks keep 'disabled')."""
    await conn.execute(
        "UPDATE webhooks SET consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END,"
        " status = CASE WHEN NOT enabled THEN 'disabled' WHEN $2 THEN 'healthy'"
        "   WHEN $3 OR consecutive_failures + 1 >= $5 THEN 'failing'"
        "   WHEN consecutive_failures + 1 >= $4 THEN 'degraded' ELSE status END"
        " WHERE id = $1",
        webhook_id, success, dead, degraded_after, failing_after,
    )


# ------------------------------------------------------------------------------------------- deliveries


async def insert_deliveries(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, str, str, bytes]]) -> None:
    """rows: (id, tenant_id, webhook_id, event_id, event_type, body); existing (webhook, event) pairs are kept."""
    if not rows:
        return
    ids, tenants, hooks, evts, types, bodies = (list(col) for col in zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, body)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])"
        " ON CONFLICT (webhook_id, event_id) DO NOTHING",
        ids, tenants, hooks, evts, types, bodies,
    )


async def insert_delivery(conn: asyncpg.Connection, *, id: str, tenant_id: str, webhook_id: str, event_id: str,
                          event_type: str, body: bytes) -> None:
    await insert_deliveries(conn, [(id, tenant_id, webhook_id, event_id, event_type, body)])


async def attempt_context(conn: asyncpg.Connection, tenant_id: str, webhook_id: str,
                          event_id: str) -> asyncpg.Record | None:
    """The delivery plus what an attempt needs from its webhook (None if either is gone). ``owner_id``: the
    owning subscription's identity (None for a plain webhook)."""
    return await conn.fetchrow(
        "SELECT d.id, d.status, d.attempts, d.body, d.event_type, w.url, w.secret_enc, w.enabled, w.kind,"
        " s.identity_id AS owner_id"
        " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
        " LEFT JOIN subscriptions s ON s.id = w.subscription_id AND s.tenant_id = w.tenant_id"
        " WHERE d.tenant_id = $1 AND d.webhook_id = $2 AND d.event_id = $3",
        tenant_id, webhook_id, event_id,
    )


async def record_attempt(conn: asyncpg.Connection, delivery_id: str, *, status: str, response_code: int | None,
                         response_body: str | None, duration_ms: int, error: str | None,
                         next_attempt_at: datetime | None) -> None:
    await conn.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, response_code = $3,"
        " response_body = $4, duration_ms = $5, error = $6, next_attempt_at = $7, updated_at = now(),"
        " delivered_at = CASE WHEN $2 = 'success' THEN now() ELSE delivered_at END WHERE id = $1",
        delivery_id, status, response_code, response_body, duration_ms, error, next_attempt_at,
    )


async def close_delivery(conn: asyncpg.Connection, delivery_id: str, *, error: str) -> None:
    """End a pending delivery without an attempt (webhook disabled or deleted)."""
    await conn.execute(
        "UPDATE webhook_deliveries SET status = 'failed', error = $2, next_attempt_at = NULL, updated_at = now()"
        " WHERE id = $1 AND status = 'pending'", delivery_id, error,
    )


async def get_delivery(conn: asyncpg.Connection, tenant_id: str, webhook_id: str,
                       delivery_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_DCOLS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
        tenant_id, webhook_id, delivery_id,
    )


async def list_deliveries(conn: asyncpg.Connection, tenant_id: str, webhook_id: str, *, status: str | None,
                          before: str | None, limit: int) -> list[asyncpg.Record]:
    """Newest first; ``before`` is the last id of the previous page."""
    return await conn.fetch(
        f"SELECT {_DCOLS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2"
        " AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        tenant_id, webhook_id, status, before, limit,
    )


async def reopen_delivery(conn: asyncpg.Connection, tenant_id: str, delivery_id: str) -> datetime:
    """Re-open for a redelivery and stamp the request; returns the stamp (cleared once the workflow started)."""
    stamp: datetime = await conn.fetchval(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now(),"
        " redeliver_requested_at = clock_timestamp() WHERE tenant_id = $1 AND id = $2"
        " RETURNING redeliver_requested_at", tenant_id, delivery_id,
    )
    return stamp


async def clear_redelivery_request(conn: asyncpg.Connection, delivery_id: str, stamp: datetime) -> None:
    """The redelivery's workflow was started: forget the request (unless a newer one was stamped meanwhile)."""
    await conn.execute("UPDATE webhook_deliveries SET redeliver_requested_at = NULL"
                       " WHERE id = $1 AND redeliver_requested_at = $2", delivery_id, stamp)


async def stranded_redeliveries(conn: asyncpg.Connection, *, older_than_seconds: float,
                                limit: int) -> list[asyncpg.Record]:
    """Redeliveries requested more than ``older_than_seconds`` ago whose workflow start was never confirmed
    (Temporal was unavailable when the API tried)."""
    return await conn.fetch(
        "SELECT id, tenant_id, webhook_id, event_id, redeliver_requested_at FROM webhook_deliveries"
        " WHERE redeliver_requested_at IS NOT NULL"
        " AND redeliver_requested_at < clock_timestamp() - make_interval(secs => $1)"
        " ORDER BY redeliver_requested_at LIMIT $2", older_than_seconds, limit,
    )


async def pending_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))
