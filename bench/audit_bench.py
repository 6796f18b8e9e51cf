"""Audit group-commit throughput: entries/s committed with 64 concurrent writers.

    .venv/bin/python bench/audit_bench.py [--writers 64] [--seconds 5] [--database-url URL]

Without --database-url it starts a private PostgreSQL (fsync ON, like production) on a free port in a temp
dir and stops it by pid afterwards. Each writer loops: build an entry, ``submit`` it, wait for the commit.
For comparison it also runs the naive way (each writer INSERTs its own row on a pool of connections).
Also reports the sealer's throughput (entries linked per second).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from audit.entry import AuditEntry
from audit.sealer import seal_all
from audit.sink import GroupCommitSink
from core.ids import new_id
from repositories import audit as repo


def _entry(i: int) -> AuditEntry:
    return AuditEntry(id=new_id("log"), tenant_id=f"tnt_bench{i % 4}", identity_id="sa:bench",
                      identity_type="service_account", action="read", success=True, request_id=new_id("req"),
                      secret_path=f"bench/path/{i % 100}", permission="read", source_ip="10.0.0.1",
                      user_agent="bench/1.0", duration_ms=1.5, extra_data={"route": "/v1/secrets/{path}"})


async def _run_writers(writers: int, seconds: float, submit) -> tuple[int, list[float]]:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + seconds
    count = 0
    latencies: list[float] = []

    async def writer(w: int) -> None:
        nonlocal count
        i = w
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await submit(_entry(i).as_row())
            latencies.append(time.perf_counter() - t0)
            count += 1
            i += writers

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return count, latencies


def _report(name: str, count: int, seconds: float, latencies: list[float]) -> None:
    q = statistics.quantiles(latencies, n=100)
    print(f"{name:<28} {count / seconds:>9.0f} entries/s   p50 {q[49] * 1000:6.2f} ms   p99 {q[98] * 1000:6.2f} ms")


async def bench(dsn: str, writers: int, seconds: float) -> None:
    sink = GroupCommitSink(dsn)
    await sink.start()
    await _run_writers(writers, 0.5, sink.submit)  # warm-up
    count, lat = await _run_writers(writers, seconds, sink.submit)
    await sink.stop()
    _report(f"group commit ({writers} writers)", count, seconds, lat)

    pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)

    async def naive(row):  # type: ignore[no-untyped-def]
        async with pool.acquire() as conn:
            await repo.insert_one(conn, row)

    count, lat = await _run_writers(writers, seconds, naive)
    await pool.close()
    _report("row per INSERT (pool of 20)", count, seconds, lat)

    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        sealed = await seal_all(conn, 2000)
        elapsed = time.perf_counter() - t0
        print(f"{'sealer':<28} {sealed / elapsed:>9.0f} entries/s linked ({sealed} entries)")
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    handle = None
    tmp = None
    dsn = args.database_url
    if not dsn:
        from devstack import services as svc

        tmp = tempfile.TemporaryDirectory(prefix="audit-bench-")
        handle = svc.start_postgres(Path(tmp.name), svc.free_port(), database="bench")
        dsn = handle.url
    try:
        from db.migrate import upgrade_to_head

        upgrade_to_head(dsn)
        asyncio.run(bench(dsn, args.writers, args.seconds))
    finally:
        if handle is not None:
            handle.stop()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
