"""SQL for identity sync runs (``identity_sync_runs``): one row per (sync_id, tenant), plus one row with
``tenant_id = SWEEP_TENANT`` for a full sweep; requests stranded while Temporal was unavailable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

SWEEP_TENANT = "*"  # tenant_id of the row that records a full (all-tenants) sweep


async def insert_run(conn: asyncpg.Connection, *, sync_id: str, tenant_id: str, partner_id: str | None,
                     trigger: str, reason: str | None, requested_by: str | None) -> asyncpg.Record:
    await conn.execute(
        "INSERT INTO identity_sync_runs (sync_id, tenant_id, partner_id, trigger, reason, requested_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sync_id, tenant_id) DO NOTHING",
        sync_id, tenant_id, partner_id, trigger, reason, requested_by)
    row = await conn.fetchrow("SELECT * FROM identity_sync_runs WHERE sync_id = $1 AND tenant_id = $2",
                              sync_id, tenant_id)
    assert row is not None
    return row


async def mark_running(conn: asyncpg.Connection, tenant_id: str, sync_ids: Sequence[str], *, trigger: str,
                       reason: str | None) -> None:
    await conn.execute(
        "INSERT INTO identity_sync_runs (sync_id, tenant_id, trigger, reason, status, started_at)"
        " SELECT s, $1, $3, $4, 'running', now() FROM unnest($2::text[]) AS s"
        " ON CONFLICT (sync_id, tenant_id) DO UPDATE SET status = 'running',"
        " started_at = COALESCE(identity_sync_runs.started_at, now())"
        " WHERE identity_sync_runs.status IN ('pending', 'running')",
        tenant_id, list(sync_ids), trigger, reason)


async def finish_runs(conn: asyncpg.Connection, tenant_id: str, sync_ids: Sequence[str], *, status: str,
                      stats: dict[str, Any], error: str | None) -> None:
    await conn.execute(
        "INSERT INTO identity_sync_runs (sync_id, tenant_id, status, stats, error, started_at, finished_at)"
        " SELECT s, $1, $3, $4::jsonb, $5, now(), now() FROM unnest($2::text[]) AS s"
        " ON CONFLICT (sync_id, tenant_id) DO UPDATE SET status = EXCLUDED.status, stats = EXCLUDED.stats,"
        " error = EXCLUDED.error, finished_at = now(),"
        " started_at = COALESCE(identity_sync_runs.started_at, now())",
        tenant_id, list(sync_ids), status, orjson.dumps(stats).decode(), error)


async def runs_for(conn: asyncpg.Connection, sync_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT * FROM identity_sync_runs WHERE sync_id = $1 ORDER BY tenant_id", sync_id))


async def history(conn: asyncpg.Connection, *, tenant_ids: Sequence[str] | None, limit: int,
                  offset: int) -> tuple[list[asyncpg.Record], int]:
    where = "($1::text[] IS NULL OR tenant_id = ANY($1))"
    arg = list(tenant_ids) if tenant_ids is not None else None
    rows = await conn.fetch(
        f"SELECT *, count(*) OVER () AS total FROM identity_sync_runs WHERE {where}"
        f" ORDER BY created_at DESC, sync_id DESC LIMIT $2 OFFSET $3", arg, limit, offset)
    total = rows[0]["total"] if rows else await conn.fetchval(
        f"SELECT count(*) FROM identity_sync_runs WHERE {where}", arg)
    return rows, int(total)


async def stranded_runs(conn: asyncpg.Connection, *, older_than_seconds: int, limit: int) -> list[asyncpg.Record]:
    """Sync requests stored but still ``pending`` after ``older_than_seconds`` (their workflow start or signal
    failed, e.g. Temporal was unavailable), oldest first (index identity_sync_runs_pending)."""
    return list(await conn.fetch(
        "SELECT sync_id, tenant_id, partner_id, trigger, reason FROM identity_sync_runs"
        " WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)"
        " ORDER BY created_at LIMIT $2", float(older_than_seconds), limit))
