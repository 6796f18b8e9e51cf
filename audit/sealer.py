"""Sealing, verifying and pruning the per-tenant hash chain (kept in ``audit_seals``; audit_log is insert-only).

Sealing links entries a moment after they commit, so inserts stay one cheap statement and never wait on a
per-tenant lock. One pass (``seal_once``), under a transaction-level advisory lock (one pass at a time across
all processes, so any number of sealers may run):

1. settle: read the highest seq handed out (Q), then the transactions holding a write lock on audit_log, and
   wait until those have ended. Every seq <= Q is then committed or gone for good: a row can no longer appear
   behind the sealer (an INSERT locks audit_log before it draws its seq and holds the lock until it ends);
2. read the entries with watermark < seq <= Q in seq order (the watermark is the newest sealed seq);
3. per tenant, append one block listing those entries and their digests, linked to the tenant's previous block,
   and move the tenant's head.

So the chain order is seq order, every sealed tenant block covers a contiguous seq range of the log, and an
entry below the watermark that no block lists was inserted behind the chain's back (verify names it).
Attack window: an entry is unprotected from its commit until the next pass has sealed it (the interval plus
the settle wait); see docs/audit.md.

Every block sealed here is v2 (HMAC under the chain key derived from AUDIT_HMAC_KEY, see audit/chain.py) and
every head written carries ``head_mac``. Each function takes ``key`` (the chain key); ``None`` derives it from
the process settings.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from audit.chain import GENESIS, Block, ChainVerifier, HeadState, VerifyResult, chain_key, seal_block
from core.background import cancel_and_wait
from core.settings import Settings, get_settings
from repositories import audit as repo

log = logging.getLogger("scaivault.audit")

SETTLE_TIMEOUT = 5.0  # seconds a pass waits for in-flight audit writers before giving up (seals nothing)


def settings_chain_key(settings: Settings) -> bytes:
    """The chain key of these settings (AUDIT_HMAC_KEY); never stored in the database."""
    return chain_key(settings.audit_hmac_key.get_secret_value())


def _key(key: bytes | None) -> bytes:
    return key if key is not None else settings_chain_key(get_settings())


def _head_state(tenant_id: str, current: Any, block: Block) -> HeadState:
    """The head after appending ``block`` (pruning checkpoint and v1 boundary carried over)."""
    return HeadState(
        tenant_id=tenant_id, head_block_no=block.block_no, head_chain_seq=block.last_chain_seq,
        head_hash=block.hash, last_log_seq=block.log_seqs[-1],
        pruned_through_block=current["pruned_through_block"] if current else 0,
        pruned_through_chain_seq=current["pruned_through_chain_seq"] if current else 0,
        pruned_hash=current["pruned_hash"] if current else GENESIS,
        v1_through_block=current["v1_through_block"] if current else 0,
    )


async def _settle(conn: asyncpg.Connection, max_wait: float) -> int | None:
    """The highest seq below which no uncommitted entry can still appear, or None after ``max_wait`` seconds."""
    allocated = await repo.allocated_seq(conn)
    writers = await repo.audit_writers(conn)
    deadline = time.monotonic() + max_wait
    delay = 0.002
    while writers and await repo.running(conn, writers):
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return allocated


async def seal_once(conn: asyncpg.Connection, limit: int = 2000, *, settle_timeout: float = SETTLE_TIMEOUT,
                    key: bytes | None = None) -> int:
    """Seal up to ``limit`` committed entries; returns how many (0 if another process holds the lock)."""
    key = _key(key)
    async with conn.transaction():
        if not await repo.try_chain_lock(conn):
            return 0
        through = await _settle(conn, settle_timeout)
        if through is None:
            log.info("audit sealing pass waited too long for in-flight audit writers; retrying next pass")
            return 0
        rows = await repo.settled_range(conn, await repo.sealed_watermark(conn), through, limit)
        if not rows:
            return 0
        by_tenant: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_tenant[row["tenant_id"]].append(row)
        current = await repo.heads(conn, list(by_tenant))
        blocks, macs = [], []
        for tenant, entries in by_tenant.items():
            h = current.get(tenant)
            block_no, chain_seq, prev = (h["head_block_no"], h["head_chain_seq"], h["head_hash"]) if h else (
                0, 0, GENESIS)
            block = seal_block(tenant, block_no + 1, chain_seq + 1, prev, entries, key)
            blocks.append(block)
            macs.append(_head_state(tenant, h, block).mac(key))
        await repo.insert_blocks(conn, blocks, [max(r["ts"] for r in by_tenant[b.tenant_id]) for b in blocks])
        await repo.upsert_heads(conn, blocks, GENESIS, macs)
    return len(rows)


async def seal_all(conn: asyncpg.Connection, batch: int = 2000, *, key: bytes | None = None) -> int:
    key = _key(key)
    total = 0
    while True:
        n = await seal_once(conn, batch, key=key)
        total += n
        if n < batch:
            return total


async def _walk(conn: asyncpg.Connection, v: ChainVerifier, *, through_block: int | None = None,
                through_seq: int | None = None) -> None:
    """Feed the tenant's blocks and rows to ``v`` in step (caller holds a transaction)."""
    blocks = repo.blocks_after(conn, v.tenant_id, v.start_block, through_block).__aiter__()
    exhausted = False

    async def more() -> None:
        nonlocal exhausted
        while not exhausted and v.wants_block():
            try:
                rec = await blocks.__anext__()
            except StopAsyncIteration:
                exhausted = True
                return
            v.add_block(Block.of(rec))

    async for row in repo.tenant_rows(conn, v.tenant_id, through_seq):
        await more()
        if v.broken is not None or not v.add_row(row):
            return
    await more()


def _check_head(v: ChainVerifier, head: Any, key: bytes) -> bool:
    """The head's MAC; False when the head is legacy (no MAC, keyed=False). Records a break in ``v``."""
    if head["head_mac"] is None:
        if head["head_block_no"] > head["v1_through_block"]:
            v._break("chain head has no MAC but the chain has keyed blocks (head MAC removed)",
                     block_no=head["head_block_no"], chain_seq=head["head_chain_seq"])
        return False
    expected = HeadState.of(head).mac(key)
    if not hmac.compare_digest(expected.encode(), str(head["head_mac"]).encode()):
        v._break("chain head does not match its MAC (head, checkpoint or v1 boundary rewritten without the key)",
                 block_no=head["head_block_no"], chain_seq=head["head_chain_seq"])
    return True


async def verify_tenant(conn: asyncpg.Connection, tenant_id: str, *, key: bytes | None = None) -> VerifyResult:
    """Walk the tenant's blocks from the pruning checkpoint (or genesis) to the head, recomputing every entry's
    digest from audit_log and every v2 block's MAC; names the first broken entry or block."""
    key = _key(key)
    keyed = True
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await repo.head(conn, tenant_id)
        v = ChainVerifier(
            tenant_id,
            start_block=head["pruned_through_block"] if head else 0,
            start_chain_seq=head["pruned_through_chain_seq"] if head else 0,
            start_hash=head["pruned_hash"] if head else GENESIS,
            sealed_through=await repo.sealed_watermark(conn),
            key=key,
            v1_through=head["v1_through_block"] if head else 0,
        )
        await _walk(conn, v)
    head_block, head_seq, head_hash = (head["head_block_no"], head["head_chain_seq"], head["head_hash"]) if head \
        else (0, 0, GENESIS)
    v.finish(head_block, head_hash)
    if head is not None:  # after the walk: a broken block is named first, a bad head only if nothing else is
        keyed = _check_head(v, head, key)
    return VerifyResult(tenant_id=tenant_id, ok=v.broken is None, checked=v.checked, head_chain_seq=head_seq,
                        head_hash=head_hash, head_block_no=head_block, unsealed=v.unsealed,
                        first_broken=v.broken, keyed=keyed)


async def verify_all(conn: asyncpg.Connection, *, key: bytes | None = None) -> list[VerifyResult]:
    key = _key(key)
    return [await verify_tenant(conn, t, key=key) for t in await repo.chain_tenants(conn)]


async def prune_once(conn: asyncpg.Connection, retention_days: int, limit: int, *, key: bytes | None = None) -> int:
    """Delete up to about ``limit`` entries older than the retention, whole blocks at a time, as a verified chain
    prefix per tenant. The tenant's checkpoint then records the last deleted block's hash so the rest of the
    chain still verifies. A broken link stops pruning that tenant (evidence is kept)."""
    key = _key(key)
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    total = 0
    async with conn.transaction():
        if not await repo.try_chain_lock(conn):
            return 0
        for t in await repo.prunable_tenants(conn, cutoff):
            if total >= limit:
                break
            run = await repo.prunable_blocks(conn, t["tenant_id"], t["pruned_through_block"], cutoff,
                                             limit - total)
            if run and await _prefix_verifies(conn, t, run[-1], key):
                last = run[-1]
                mac = replace(HeadState.of(t), pruned_through_block=last["block_no"],
                              pruned_through_chain_seq=last["last_chain_seq"], pruned_hash=last["hash"]).mac(key)
                total += await repo.prune_through(conn, t["tenant_id"], last, mac)
    return total


async def _prefix_verifies(conn: asyncpg.Connection, head: Any, last: Any, key: bytes) -> bool:
    v = ChainVerifier(head["tenant_id"], start_block=head["pruned_through_block"],
                      start_chain_seq=head["pruned_through_chain_seq"], start_hash=head["pruned_hash"],
                      sealed_through=last["last_log_seq"], key=key, v1_through=head["v1_through_block"])
    await _walk(conn, v, through_block=last["block_no"], through_seq=last["last_log_seq"])
    _check_head(v, head, key)
    if v.finish(last["block_no"], last["hash"]) and v.broken is None:
        return True
    log.error("audit chain broken; not pruning past it", extra={"tenant_id": head["tenant_id"],
                                                                 "broken": v.broken})
    return False


class SealerLoop:
    """Background sealing every ``interval`` seconds (advisory-locked, so any number of processes can run it).

    Started by the Temporal worker process (``start_worker_sealer``) and, only when AUDIT_SEAL_IN_API is true,
    by each API process; the housekeeping sweeper ``seal_audit_chain`` is the fallback.
    """

    def __init__(self, db: Any, interval: float, batch: int = 2000, stop: asyncio.Event | None = None,
                 key: bytes | None = None) -> None:
        self._db = db
        self._key = key
        self._interval = interval
        self._batch = batch
        self._stop = stop or asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> SealerLoop:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="audit-sealer")
        return self

    async def stop(self) -> None:
        self._stop.set()
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval)
                return
            except TimeoutError:
                pass
            try:
                async with self._db.raw() as conn:
                    await seal_all(conn, self._batch, key=self._key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit sealing pass failed", extra={"error": type(exc).__name__})


_WORKER_LOOPS: set[SealerLoop] = set()  # strong references: the event loop keeps only weak ones to tasks


def start_worker_sealer(db: Any, settings: Any, stop: asyncio.Event) -> SealerLoop:
    """The worker process's sealer loop (one line in worker/main.py); it ends when ``stop`` is set."""
    loop = SealerLoop(db, settings.audit_seal_interval_seconds, stop=stop,
                      key=settings_chain_key(settings)).start()
    if loop._task is not None:
        _WORKER_LOOPS.add(loop)
        loop._task.add_done_callback(lambda _t: _WORKER_LOOPS.discard(loop))
    return loop
