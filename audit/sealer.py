"""Sealing, verifying and pruning the per-tenant hash chain.

Sealing links entries a moment after they commit (inserts stay cheap and never wait on a per-tenant lock):
each pass takes committed unsealed rows in insertion order, gives them the next ``chain_seq`` of their
tenant and ``hash = SHA-256(prev_hash || canonical)``, and moves the tenant's head. One pass runs at a time
across all processes (transaction-level advisory lock), so several API processes and workers may all run the
loop. Attack window: an entry is unprotected between its commit and the next pass (AUDIT_SEAL_INTERVAL_SECONDS,
2 s by default); see docs/audit.md.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from audit.chain import GENESIS, ChainWalker, VerifyResult, link
from repositories import audit as repo

log = logging.getLogger("scaivault.audit")


async def seal_once(conn: asyncpg.Connection, limit: int = 2000) -> int:
    """Seal up to ``limit`` committed entries; returns how many (0 if another process holds the lock)."""
    async with conn.transaction():
        if not await repo.try_chain_lock(conn):
            return 0
        rows = await repo.unsealed(conn, limit)
        if not rows:
            return 0
        tenants = sorted({r["tenant_id"] for r in rows})
        current = await repo.heads(conn, tenants)
        state: dict[str, tuple[int, str]] = {
            t: (current[t]["head_chain_seq"], current[t]["head_hash"]) if t in current else (0, GENESIS)
            for t in tenants
        }
        seals: list[tuple[int, int, str, str]] = []
        for row in rows:
            seq, prev = state[row["tenant_id"]]
            chain_seq = seq + 1
            digest = link(prev, row, chain_seq)
            seals.append((row["seq"], chain_seq, prev, digest))
            state[row["tenant_id"]] = (chain_seq, digest)
        await repo.write_seals(conn, seals)
        await repo.upsert_heads(conn, state, GENESIS)
    return len(rows)


async def seal_all(conn: asyncpg.Connection, batch: int = 2000) -> int:
    total = 0
    while True:
        n = await seal_once(conn, batch)
        total += n
        if n < batch:
            return total


async def verify_tenant(conn: asyncpg.Connection, tenant_id: str, *, batch: int = 2000) -> VerifyResult:
    """Walk the tenant's chain from the pruning checkpoint (or genesis) to the recorded head."""
    head = await repo.head(conn, tenant_id)
    start_seq, start_hash = (head["pruned_through_seq"], head["pruned_hash"]) if head else (0, GENESIS)
    head_seq, head_hash = (head["head_chain_seq"], head["head_hash"]) if head else (0, GENESIS)
    walker = ChainWalker(start_seq, start_hash)
    after = start_seq
    while walker.broken is None:
        rows = await repo.sealed_chain(conn, tenant_id, after_chain_seq=after, limit=batch)
        for row in rows:
            if not walker.feed(row):
                break
        if len(rows) < batch:
            break
        after = rows[-1]["chain_seq"]
    if walker.broken is None and (walker.expected_seq - 1, walker.prev_hash) != (head_seq, head_hash):
        walker.broken = {"id": None, "chain_seq": walker.expected_seq,
                         "reason": f"chain ends at chain_seq {walker.expected_seq - 1} but the head records "
                                   f"{head_seq} (entries removed from the end)"}
    return VerifyResult(tenant_id=tenant_id, ok=walker.broken is None, checked=walker.checked,
                        head_chain_seq=head_seq, head_hash=head_hash,
                        unsealed=await repo.count_unsealed(conn, tenant_id), first_broken=walker.broken)


async def verify_all(conn: asyncpg.Connection) -> list[VerifyResult]:
    return [await verify_tenant(conn, t) for t in await repo.chain_tenants(conn)]


async def prune_once(conn: asyncpg.Connection, retention_days: int, limit: int) -> int:
    """Delete up to ``limit`` sealed entries older than the retention, as a verified chain prefix per tenant.

    The deleted prefix is verified first; the tenant's checkpoint then records the hash of the last deleted
    entry so the rest of the chain still verifies. A broken link stops pruning that tenant (evidence is kept).
    """
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    total = 0
    async with conn.transaction():
        if not await repo.try_chain_lock(conn):
            return 0
        for t in await repo.prunable_tenants(conn, cutoff):
            if total >= limit:
                break
            last = _verified_prefix(
                await repo.sealed_chain(conn, t["tenant_id"], after_chain_seq=t["pruned_through_seq"],
                                        limit=limit - total),
                t["pruned_through_seq"], t["pruned_hash"], cutoff, t["tenant_id"],
            )
            if last is not None:
                total += await repo.prune_through(conn, t["tenant_id"], last["chain_seq"], last["hash"])
    return total


def _verified_prefix(rows: list[Any], start_seq: int, start_hash: str, cutoff: datetime,
                     tenant_id: str) -> Any | None:
    walker = ChainWalker(start_seq, start_hash)
    last = None
    for row in rows:
        if row["ts"] >= cutoff:
            break
        if not walker.feed(row):
            log.error("audit chain broken; not pruning past it",
                      extra={"tenant_id": tenant_id, "broken": walker.broken})
            break
        last = row
    return last


class SealerLoop:
    """Background sealing in the API process every ``interval`` seconds (advisory-locked, so any number of
    processes can run it)."""

    def __init__(self, db: Any, interval: float, batch: int = 2000) -> None:
        self._db = db
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.warning("background task ended with an error", extra={"error": type(exc).__name__})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with self._db.raw() as conn:
                    await seal_all(conn, self._batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit sealing pass failed", extra={"error": type(exc).__name__})
