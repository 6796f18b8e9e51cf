"""SQL for subscriptions and their polling buffers. Every query takes the tenant explicitly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

_COLS = ("id, tenant_id, partner_id, identity_id, name, paths, events, filters, delivery_type, buffer_size,"
         " webhook_id, status, dropped_events, created_at, updated_at")
UPDATABLE = frozenset({"name", "paths", "events", "filters", "delivery_type", "buffer_size", "webhook_id",
                       "status"})


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, identity_id: str,
                 name: str, paths: list[str], events: list[str], filters: dict[str, Any], delivery_type: str,
                 buffer_size: int, webhook_id: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO subscriptions (id, tenant_id, partner_id, identity_id, name, paths, events, filters,"
        f" delivery_type, buffer_size, webhook_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9,$10,$11) RETURNING {_COLS}",
        id, tenant_id, partner_id, identity_id, name, paths, events, orjson.dumps(filters).decode(), delivery_type,
        buffer_size, webhook_id,
    )


async def get(conn: asyncpg.Connection, tenant_id: str, sub_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_COLS} FROM subscriptions WHERE tenant_id = $1 AND id = $2{lock}",
                               tenant_id, sub_id)


async def list_for(conn: asyncpg.Connection, tenant_id: str, identity_id: str, *, after: str | None,
                   limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM subscriptions WHERE tenant_id = $1 AND identity_id = $2"
        " AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4",
        tenant_id, identity_id, after, limit,
    )


async def update(conn: asyncpg.Connection, tenant_id: str, sub_id: str, changes: dict[str, Any]) -> asyncpg.Record | None:
    bad = set(changes) - UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    sets, args = [], [tenant_id, sub_id]
    for col, value in changes.items():
        args.append(orjson.dumps(value).decode() if col == "filters" else value)
        sets.append(f"{col} = ${len(args)}" + ("::jsonb" if col == "filters" else ""))
    sets.append("updated_at = now()")
    return await conn.fetchrow(
        f"UPDATE subscriptions SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {_COLS}", *args
    )


async def delete(conn: asyncpg.Connection, tenant_id: str, sub_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("DELETE FROM subscriptions WHERE tenant_id = $1 AND id = $2 RETURNING webhook_id",
                               tenant_id, sub_id)


async def polling_for_tenants(conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, tenant_id, paths, events, filters FROM subscriptions"
        " WHERE tenant_id = ANY($1::text[]) AND delivery_type = 'polling' AND status = 'active'",
        list(tenant_ids),
    )


async def buffer_insert(conn: asyncpg.Connection, rows: Sequence[tuple[str, int, str, str, str]]) -> None:
    """rows: (subscription_id, seq, tenant_id, event_id, envelope_json)."""
    if not rows:
        return
    subs, seqs, tenants, evts, envs = (list(c) for c in zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO subscription_events (subscription_id, seq, tenant_id, event_id, envelope)"
        " SELECT s, q, t, e, v::jsonb FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])"
        " AS u(s, q, t, e, v) ON CONFLICT DO NOTHING",
        subs, seqs, tenants, evts, envs,
    )


async def trim(conn: asyncpg.Connection, sub_ids: Sequence[str]) -> None:
    """Drop the oldest buffered events beyond each subscription's buffer_size; count them in dropped_events."""
    if not sub_ids:
        return
    await conn.execute(
        "WITH cut AS ("
        "  SELECT s.id, c.seq FROM subscriptions s CROSS JOIN LATERAL ("
        "    SELECT seq FROM subscription_events x WHERE x.subscription_id = s.id"
        "    ORDER BY seq DESC OFFSET s.buffer_size LIMIT 1) c"
        "  WHERE s.id = ANY($1::text[])"
        "), del AS ("
        "  DELETE FROM subscription_events d USING cut WHERE d.subscription_id = cut.id AND d.seq <= cut.seq"
        "  RETURNING d.subscription_id"
        ") UPDATE subscriptions s SET dropped_events = s.dropped_events + c.n"
        " FROM (SELECT subscription_id, count(*) AS n FROM del GROUP BY 1) c WHERE s.id = c.subscription_id",
        list(sub_ids),
    )


async def seq_of(conn: asyncpg.Connection, tenant_id: str, sub_id: str, event_id: str) -> int | None:
    seq = await conn.fetchval(
        "SELECT seq FROM subscription_events WHERE subscription_id = $1 AND tenant_id = $2 AND event_id = $3",
        sub_id, tenant_id, event_id,
    )
    if seq is None:
        seq = await conn.fetchval("SELECT seq FROM events WHERE event_id = $1 AND tenant_id = $2", event_id, tenant_id)
    return None if seq is None else int(seq)


async def fetch_buffer(conn: asyncpg.Connection, tenant_id: str, sub_id: str, *, after_seq: int,
                       limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seq, event_id, envelope FROM subscription_events WHERE subscription_id = $1 AND tenant_id = $2"
        " AND seq > $3 ORDER BY seq LIMIT $4",
        sub_id, tenant_id, after_seq, limit,
    )


async def ack(conn: asyncpg.Connection, tenant_id: str, sub_id: str, event_ids: Sequence[str]) -> int:
    status = await conn.execute(
        "DELETE FROM subscription_events WHERE subscription_id = $1 AND tenant_id = $2 AND event_id = ANY($3::text[])",
        sub_id, tenant_id, list(event_ids),
    )
    return int(status.split()[-1])


async def buffered(conn: asyncpg.Connection, tenant_id: str, sub_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM subscription_events WHERE subscription_id = $1 AND tenant_id = $2", sub_id, tenant_id))
