"""Outbox SQL. ``emit`` runs inside the caller's transaction, so an event commits with its change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from core.ids import new_id
from core.logging import request_id_var


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def emit(
    conn: asyncpg.Connection,
    *,
    event_type: str,
    tenant_id: str,
    partner_id: str | None,
    identity_id: str | None,
    data: dict[str, Any],
    path: str | None = None,
    request_id: str | None = None,
) -> str:
    """Insert one event into the outbox on ``conn`` (must be inside the change's transaction)."""
    event_id = new_id("evt")
    await conn.execute(
        "INSERT INTO events (event_id, event_type, tenant_id, partner_id, identity_id, path, data, request_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
        event_id, event_type, tenant_id, partner_id, identity_id, path,
        orjson.dumps(data).decode(), request_id or request_id_var.get(),
    )
    return event_id


def envelope(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """The documented event envelope (spec lifecycle.md §5.1); ``path`` omitted for non-path resources."""
    data = row["data"]
    if isinstance(data, str):
        data = orjson.loads(data)
    out: dict[str, Any] = {
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "timestamp": iso(row["created_at"]),
        "tenant_id": row["tenant_id"],
        "partner_id": row["partner_id"],
        "identity_id": row["identity_id"],
    }
    if row["path"] is not None:
        out["path"] = row["path"]
    out["data"] = data
    out["request_id"] = row["request_id"]
    return out


async def prune_dispatched(conn: asyncpg.Connection, *, older_than: datetime, limit: int) -> int:
    """Delete up to ``limit`` dispatched events older than ``older_than``; returns how many went."""
    status = await conn.execute(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE dispatched_at IS NOT NULL"
        " AND created_at < $1 ORDER BY seq LIMIT $2)",
        older_than, limit,
    )
    return int(status.split()[-1])


async def claim_undispatched(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Lock up to ``limit`` committed, undispatched events (oldest first); concurrent relays skip them."""
    return await conn.fetch(
        "SELECT seq, event_id, event_type, tenant_id, partner_id, identity_id, path, data, request_id, created_at"
        " FROM events WHERE dispatched_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )


async def mark_dispatched(conn: asyncpg.Connection, seqs: list[int]) -> None:
    await conn.execute("UPDATE events SET dispatched_at = now() WHERE seq = ANY($1::bigint[])", seqs)


async def undispatched_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE dispatched_at IS NULL"))


async def get(conn: asyncpg.Connection, tenant_id: str, event_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT seq, event_id, event_type, tenant_id, partner_id, identity_id, path, data, request_id, created_at"
        " FROM events WHERE tenant_id = $1 AND event_id = $2",
        tenant_id, event_id,
    )
