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
    + ", ".join(f"c{i}" for i in range(len(COLUMNS))) + ")"
)
_ROW_COLS = ("seq, id, tenant_id, partner_id, ts, request_id, correlation_id, identity_id, identity_type, action,"
             " resource_type, resource_id, secret_path, permission, version, success, error_code, source_ip,"
             " user_agent, duration_ms, extra_data::text AS extra_data")


async def insert_one(conn: asyncpg.Connection, row: Sequence[Any]) -> None:
    await conn.execute(_INSERT_ONE, *row)


async def copy_many(conn: asyncpg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """All rows with one binary COPY (autocommitted: one transaction, one WAL flush). The group commit's path:
    measured cheaper than the unnest INSERT (bench/audit_bench.py)."""
    await conn.copy_records_to_table("audit_log", records=rows, columns=COLUMNS)


async def insert_many(conn: asyncpg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """All rows in one unnest INSERT (kept for the benchmark's comparison with ``copy_many``)."""
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


async def stream_logs(conn: asyncpg.Connection, tenant_id: str, f: LogFilter,
                      limit: int | None = None) -> AsyncIterator[asyncpg.Record]:
    """Oldest first through a server-side cursor (caller holds a transaction); at most ``limit`` rows."""
    where, args = _where(tenant_id, f)
    cap = f" LIMIT {int(limit)}" if limit is not None else ""
    async for row in conn.cursor(f"SELECT {_ROW_COLS} FROM audit_log WHERE {where} ORDER BY seq{cap}", *args,
                                 prefetch=500 if limit is None else max(1, min(500, int(limit)))):
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
_HEAD_COLS = ("tenant_id, head_block_no, head_chain_seq, head_hash, last_log_seq, pruned_through_block,"
              " pruned_through_chain_seq, pruned_through_log_seq, pruned_hash, v1_through_block, head_mac")
_BLOCK_COLS = "tenant_id, block_no, first_chain_seq, log_seqs, log_ids, digests, prev_hash, hash, chain_version"


async def try_chain_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK))


async def allocated_seq(conn: asyncpg.Connection) -> int:
    """The highest audit_log.seq handed out so far (committed or not; sequences are not transactional)."""
    return int(await conn.fetchval(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM audit_log_seq_seq"))


async def audit_writers(conn: asyncpg.Connection) -> list[str]:
    """Virtual transaction ids of the other transactions that hold a write lock on audit_log right now.

    An INSERT/COPY takes ROW EXCLUSIVE on audit_log before it draws its seq and keeps it until commit/abort,
    so any transaction still able to commit a seq drawn before this call is in the list.
    """
    rows = await conn.fetch(
        "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND relation = 'audit_log'::regclass AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"
    )
    return [r["virtualtransaction"] for r in rows]


async def running(conn: asyncpg.Connection, vxids: Sequence[str]) -> int:
    """How many of these virtual transactions are still open (each holds a lock on its own vxid)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY($1::text[])",
        list(vxids)))


async def sealed_watermark(conn: asyncpg.Connection) -> int:
    """Every entry with seq <= this is sealed (the sealer links settled seqs in order)."""
    return int(await conn.fetchval("SELECT coalesce(max(last_log_seq), 0) FROM audit_chain_heads"))


async def settled_range(conn: asyncpg.Connection, after_seq: int, through_seq: int,
                        limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_ROW_COLS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        after_seq, through_seq, limit,
    )


async def heads(conn: asyncpg.Connection, tenant_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(f"SELECT {_HEAD_COLS} FROM audit_chain_heads WHERE tenant_id = ANY($1::text[])",
                            list(tenant_ids))
    return {r["tenant_id"]: r for r in rows}


async def head(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_HEAD_COLS} FROM audit_chain_heads WHERE tenant_id = $1", tenant_id)


async def insert_blocks(conn: asyncpg.Connection, blocks: Sequence[Any], last_ts: Sequence[datetime]) -> None:
    """``blocks``: audit.chain.Block objects; ``last_ts``: the newest entry ts of each."""
    await conn.executemany(
        "INSERT INTO audit_seals (tenant_id, block_no, first_chain_seq, last_chain_seq, log_seqs, log_ids,"
        " digests, last_ts, prev_hash, hash, chain_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        [(b.tenant_id, b.block_no, b.first_chain_seq, b.last_chain_seq, b.log_seqs, b.log_ids, b.digests, ts,
          b.prev_hash, b.hash, b.chain_version) for b, ts in zip(blocks, last_ts, strict=True)],
    )


async def upsert_heads(conn: asyncpg.Connection, blocks: Sequence[Any], genesis: str,
                       head_macs: Sequence[str]) -> None:
    """Move each block's tenant head to it (one block per tenant), with the head's new MAC."""
    await conn.execute(
        "INSERT INTO audit_chain_heads (tenant_id, head_block_no, head_chain_seq, head_hash, last_log_seq,"
        " pruned_hash, head_mac) SELECT t, b, c, h, s, $6, m FROM unnest($1::text[], $2::int8[], $3::int8[],"
        " $4::text[], $5::int8[], $7::text[]) AS u(t, b, c, h, s, m)"
        " ON CONFLICT (tenant_id) DO UPDATE SET head_block_no = EXCLUDED.head_block_no,"
        " head_chain_seq = EXCLUDED.head_chain_seq, head_hash = EXCLUDED.head_hash,"
        " last_log_seq = EXCLUDED.last_log_seq, head_mac = EXCLUDED.head_mac, updated_at = now()",
        [b.tenant_id for b in blocks], [b.block_no for b in blocks], [b.last_chain_seq for b in blocks],
        [b.hash for b in blocks], [b.log_seqs[-1] for b in blocks], genesis, list(head_macs),
    )


def blocks_after(conn: asyncpg.Connection, tenant_id: str, after_block: int,
                 through_block: int | None = None) -> Any:
    """Cursor over the tenant's blocks in order (caller holds a transaction)."""
    upper = through_block if through_block is not None else 2**62
    return conn.cursor(f"SELECT {_BLOCK_COLS} FROM audit_seals WHERE tenant_id = $1 AND block_no > $2"
                       " AND block_no <= $3 ORDER BY block_no", tenant_id, after_block, upper, prefetch=50)


def tenant_rows(conn: asyncpg.Connection, tenant_id: str, through_seq: int | None = None) -> Any:
    """Cursor over all the tenant's entries, ascending seq (caller holds a transaction)."""
    upper = through_seq if through_seq is not None else 2**62
    return conn.cursor(f"SELECT {_ROW_COLS} FROM audit_log WHERE tenant_id = $1 AND seq <= $2 ORDER BY seq",
                       tenant_id, upper, prefetch=1000)


async def chain_tenants(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT tenant_id FROM audit_chain_heads ORDER BY tenant_id")
    return [r["tenant_id"] for r in rows]


async def prunable_tenants(conn: asyncpg.Connection, cutoff: datetime) -> list[asyncpg.Record]:
    """Heads whose next block is entirely older than ``cutoff``."""
    return await conn.fetch(
        f"SELECT {_HEAD_COLS} FROM audit_chain_heads h WHERE EXISTS (SELECT 1 FROM audit_seals s"
        " WHERE s.tenant_id = h.tenant_id AND s.block_no = h.pruned_through_block + 1 AND s.last_ts < $1)"
        " ORDER BY tenant_id", cutoff,
    )


async def prunable_blocks(conn: asyncpg.Connection, tenant_id: str, after_block: int, cutoff: datetime,
                          max_entries: int) -> list[asyncpg.Record]:
    """The contiguous run of blocks after the checkpoint whose entries are all older than ``cutoff``,
    stopping once ``max_entries`` entries are covered."""
    rows = await conn.fetch(
        "SELECT block_no, last_chain_seq, log_seqs[array_upper(log_seqs, 1)] AS last_log_seq, hash, last_ts,"
        " sum(cardinality(log_seqs)) OVER (ORDER BY block_no) AS running FROM audit_seals"
        " WHERE tenant_id = $1 AND block_no > $2 ORDER BY block_no LIMIT 1000", tenant_id, after_block,
    )
    out: list[asyncpg.Record] = []
    for i, r in enumerate(rows):
        if r["block_no"] != after_block + i + 1 or r["last_ts"] >= cutoff:
            break
        out.append(r)
        if r["running"] >= max_entries:
            break
    return out


async def prune_through(conn: asyncpg.Connection, tenant_id: str, block: asyncpg.Record, head_mac: str) -> int:
    """Delete the tenant's entries and blocks up to ``block`` and record the checkpoint (caller holds the
    lock and the transaction, and verified that prefix)."""
    await conn.execute("SET LOCAL scaivault.audit_prune = 'on'")
    status = await conn.execute("DELETE FROM audit_log WHERE tenant_id = $1 AND seq <= $2",
                                tenant_id, block["last_log_seq"])
    await conn.execute("DELETE FROM audit_seals WHERE tenant_id = $1 AND block_no <= $2",
                       tenant_id, block["block_no"])
    await conn.execute(
        "UPDATE audit_chain_heads SET pruned_through_block = $2, pruned_through_chain_seq = $3,"
        " pruned_through_log_seq = $4, pruned_hash = $5, head_mac = $6, updated_at = now() WHERE tenant_id = $1",
        tenant_id, block["block_no"], block["last_chain_seq"], block["last_log_seq"], block["hash"], head_mac,
    )
    return int(status.split()[-1])
