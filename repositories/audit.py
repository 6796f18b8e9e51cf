"""SQL for the audit log and its hash chain. Every query on entries takes the tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from audit.entry import COLUMNS, PG_TYPES

_COLS = ", ".join(COLUMNS)
_INSERT_ONE = (
    f"INSERT INTO audit_log ({_COLS}) VALUES ("
    + ", ".join(f"${i + 1}" + ("::jsonb" if c == "extra_data" else "") for i, c in enumerate(COLUMNS)) + ")"
)
_INSERT_MANY = (
    f"INSERT INTO audit_log ({_COLS}) SELECT "
    + ", ".join(f"u.c{i}" + ("::jsonb" if c == "extra_data" else "") for i, c in enumerate(COLUMNS))
    + " FROM unnest(" + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(PG_TYPES)) + ") AS u("
    + ", ".join(f"c{i}" for i in range(len(COLUMNS))) + ") ON CONFLICT (id) DO NOTHING"
)
_ROW_COLS = ("seq, id, tenant_id, partner_id, ts, request_id, correlation_id, identity_id, identity_type, action,"
             " resource_type, resource_id, secret_path, permission, version, success, error_code, source_ip,"
             " user_agent, duration_ms, extra_data::text AS extra_data, chain_seq, prev_hash, hash")


async def insert_one(conn: asyncpg.Connection, row: Sequence[Any]) -> None:
    await conn.execute(_INSERT_ONE, *row)


async def insert_many(conn: asyncpg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """All rows in one statement (one round trip, one commit when autocommitted)."""
    columns = [list(col) for col in zip(*rows, strict=True)]
    await conn.execute(_INSERT_MANY, *columns)


# ----------------------------------------------------------------------------------------------- queries


@dataclass
class LogFilter:
    since: datetime | None = None
    until: datetime | None = None
    actions: list[str] | None = None
    identity_id: str | None = None
    identity_type: str | None = None
    path_prefix: str | None = None
    secret_path: str | None = None
    success: bool | None = None
    source_ip: str | None = None
    request_id: str | None = None


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(tenant_id: str, f: LogFilter) -> tuple[str, list[Any]]:
    clauses = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if f.since is not None:
        add("ts >= ?", f.since)
    if f.until is not None:
        add("ts < ?", f.until)
    if f.actions:
        add("action = ANY(?::text[])", f.actions)
    if f.identity_id is not None:
        add("identity_id = ?", f.identity_id)
    if f.identity_type is not None:
        add("identity_type = ?", f.identity_type)
    if f.path_prefix:
        add("secret_path LIKE ?", _like_prefix(f.path_prefix))
    if f.secret_path is not None:
        add("secret_path = ?", f.secret_path)
    if f.success is not None:
        add("success = ?", f.success)
    if f.source_ip is not None:
        add("source_ip = ?", f.source_ip)
    if f.request_id is not None:
        add("request_id = ?", f.request_id)
    return " AND ".join(clauses), args


async def list_logs(conn: asyncpg.Connection, tenant_id: str, f: LogFilter, *, before_seq: int | None,
                    limit: int) -> list[asyncpg.Record]:
    """Newest first (by insertion sequence); ``before_seq`` is the cursor."""
    where, args = _where(tenant_id, f)
    if before_seq is not None:
        args.append(before_seq)
        where += f" AND seq < ${len(args)}"
    args.append(limit)
    return await conn.fetch(
        f"SELECT {_ROW_COLS} FROM audit_log WHERE {where} ORDER BY seq DESC LIMIT ${len(args)}", *args
    )


async def stream_logs(conn: asyncpg.Connection, tenant_id: str, f: LogFilter) -> AsyncIterator[asyncpg.Record]:
    """Oldest first through a server-side cursor (caller holds a transaction)."""
    where, args = _where(tenant_id, f)
    async for row in conn.cursor(f"SELECT {_ROW_COLS} FROM audit_log WHERE {where} ORDER BY seq", *args,
                                 prefetch=500):
        yield row


async def secret_summary(conn: asyncpg.Connection, tenant_id: str, path: str, since: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE action = 'read' AND success) AS reads,"
        " count(*) FILTER (WHERE action IN ('write', 'rotate', 'delete') AND success) AS writes,"
        " count(DISTINCT identity_id) FILTER (WHERE action = 'read' AND success) AS readers,"
        " max(ts) FILTER (WHERE action = 'read' AND success) AS last_read,"
        " count(*) FILTER (WHERE NOT success) AS failed"
        " FROM audit_log WHERE tenant_id = $1 AND secret_path = $2 AND ts >= $3",
        tenant_id, path, since,
    )


async def identity_summary(conn: asyncpg.Connection, tenant_id: str, identity_id: str,
                           since: datetime) -> tuple[asyncpg.Record, list[asyncpg.Record], list[str]]:
    totals = await conn.fetchrow(
        "SELECT count(*) AS events, count(*) FILTER (WHERE NOT success) AS failed, max(ts) AS last_seen,"
        " count(DISTINCT secret_path) AS paths FROM audit_log"
        " WHERE tenant_id = $1 AND identity_id = $2 AND ts >= $3",
        tenant_id, identity_id, since,
    )
    by_action = await conn.fetch(
        "SELECT action, count(*) AS n FROM audit_log WHERE tenant_id = $1 AND identity_id = $2 AND ts >= $3"
        " GROUP BY action ORDER BY n DESC", tenant_id, identity_id, since,
    )
    paths = await conn.fetch(
        "SELECT DISTINCT secret_path FROM audit_log WHERE tenant_id = $1 AND identity_id = $2 AND success"
        " AND secret_path IS NOT NULL ORDER BY secret_path LIMIT 1000", tenant_id, identity_id,
    )
    return totals, by_action, [r["secret_path"] for r in paths]


async def summary(conn: asyncpg.Connection, tenant_id: str, since: datetime, until: datetime) -> dict[str, Any]:
    base = "FROM audit_log WHERE tenant_id = $1 AND ts >= $2 AND ts < $3"
    totals = await conn.fetchrow(f"SELECT count(*) AS total, count(*) FILTER (WHERE success) AS ok {base}",
                                 tenant_id, since, until)
    by_action = await conn.fetch(f"SELECT action AS k, count(*) AS n {base} GROUP BY 1 ORDER BY 2 DESC",
                                 tenant_id, since, until)
    by_type = await conn.fetch(f"SELECT identity_type AS k, count(*) AS n {base} GROUP BY 1 ORDER BY 2 DESC",
                               tenant_id, since, until)
    top_ids = await conn.fetch(f"SELECT identity_id AS k, count(*) AS n {base} GROUP BY 1 ORDER BY 2 DESC, 1"
                               " LIMIT 10", tenant_id, since, until)
    top_paths = await conn.fetch(f"SELECT secret_path AS k, count(*) AS n {base} AND secret_path IS NOT NULL"
                                 " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10", tenant_id, since, until)
    return {"total": totals["total"], "ok": totals["ok"], "by_action": by_action, "by_identity_type": by_type,
            "top_identities": top_ids, "top_paths": top_paths}


# ----------------------------------------------------------------------------------------------- chain

SEAL_LOCK = 0x5CA1_A0D1  # pg_advisory_xact_lock key: one sealer/pruner at a time across all processes


async def try_chain_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK))


async def unsealed(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_ROW_COLS} FROM audit_log WHERE hash IS NULL ORDER BY seq LIMIT $1", limit)


async def heads(conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM audit_chain_heads WHERE tenant_id = ANY($1::text[])", list(tenant_ids))
    return {r["tenant_id"]: r for r in rows}


async def head(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM audit_chain_heads WHERE tenant_id = $1", tenant_id)


async def write_seals(conn: asyncpg.Connection, seals: Sequence[tuple[int, int, str, str]]) -> None:
    """``seals``: (seq, chain_seq, prev_hash, hash) rows, written in one statement."""
    seqs, chain, prev, hashes = (list(c) for c in zip(*seals, strict=True))
    await conn.execute(
        "UPDATE audit_log a SET chain_seq = u.chain_seq, prev_hash = u.prev_hash, hash = u.hash,"
        " sealed_at = now() FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[])"
        " AS u(seq, chain_seq, prev_hash, hash) WHERE a.seq = u.seq AND a.hash IS NULL",
        seqs, chain, prev, hashes,
    )


async def upsert_heads(conn: asyncpg.Connection, new_heads: dict[str, tuple[int, str]], genesis: str) -> None:
    tenants = list(new_heads)
    await conn.execute(
        "INSERT INTO audit_chain_heads (tenant_id, head_chain_seq, head_hash, pruned_hash)"
        " SELECT t, s, h, $4 FROM unnest($1::text[], $2::int8[], $3::text[]) AS u(t, s, h)"
        " ON CONFLICT (tenant_id) DO UPDATE SET head_chain_seq = EXCLUDED.head_chain_seq,"
        " head_hash = EXCLUDED.head_hash, updated_at = now()",
        tenants, [new_heads[t][0] for t in tenants], [new_heads[t][1] for t in tenants], genesis,
    )


async def sealed_chain(conn: asyncpg.Connection, tenant_id: str, *, after_chain_seq: int,
                       limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_ROW_COLS} FROM audit_log WHERE tenant_id = $1 AND chain_seq > $2"
        " ORDER BY chain_seq LIMIT $3", tenant_id, after_chain_seq, limit,
    )


async def count_unsealed(conn: asyncpg.Connection, tenant_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND hash IS NULL",
                                   tenant_id))


async def chain_tenants(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT tenant_id FROM audit_chain_heads ORDER BY tenant_id")
    return [r["tenant_id"] for r in rows]


async def prunable_tenants(conn: asyncpg.Connection, cutoff: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT h.tenant_id, h.pruned_through_seq, h.pruned_hash FROM audit_chain_heads h"
        " WHERE EXISTS (SELECT 1 FROM audit_log a WHERE a.tenant_id = h.tenant_id AND a.ts < $1"
        " AND a.chain_seq IS NOT NULL)", cutoff,
    )


async def prune_through(conn: asyncpg.Connection, tenant_id: str, chain_seq: int, last_hash: str) -> int:
    """Delete the sealed prefix up to ``chain_seq`` and record the checkpoint (caller holds the lock/tx)."""
    await conn.execute("SET LOCAL scaivault.audit_prune = 'on'")
    status = await conn.execute(
        "DELETE FROM audit_log WHERE tenant_id = $1 AND chain_seq IS NOT NULL AND chain_seq <= $2",
        tenant_id, chain_seq,
    )
    await conn.execute(
        "UPDATE audit_chain_heads SET pruned_through_seq = $2, pruned_hash = $3, updated_at = now()"
        " WHERE tenant_id = $1", tenant_id, chain_seq, last_hash,
    )
    return int(status.split()[-1])
