"""Audit write cost: group-commit throughput (COPY vs unnest INSERT), per-index insert cost, sealer speed.

    .venv/bin/python bench/audit_bench.py [--writers 64] [--seconds 5] [--database-url URL] [--index-costs]

Without --database-url it starts a private PostgreSQL (fsync ON, like production) on a free port in a temp
dir and stops it by pid afterwards. Each writer loops: build an entry, ``submit`` it, wait for the commit.
The group commit runs twice, writing batches with binary COPY (what the sink uses) and with the unnest INSERT;
for comparison it also runs the naive way (each writer INSERTs its own row on a pool of connections). Then it
reports the sealer's throughput (entries linked per second, including its settle step) and, with
--index-costs, single-connection COPY throughput into scratch tables with different index sets (the price of
each audit_log index on every insert; also the database server's CPU seconds per 10k entries).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from audit.entry import COLUMNS, AuditEntry
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
    for name, write in (("COPY", repo.copy_many), ("unnest INSERT", repo.insert_many)):
        sink = GroupCommitSink(dsn, write_rows=write)
        await sink.start()
        await _run_writers(writers, 0.5, sink.submit)  # warm-up
        count, lat = await _run_writers(writers, seconds, sink.submit)
        await sink.stop()
        _report(f"group commit, {name}", count, seconds, lat)

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


# Index sets for --index-costs: the previous layout (before the chain moved to audit_seals) and the current one.
_OLD_INDEXES = [
    "CREATE UNIQUE INDEX ON {t} (id)",
    "CREATE INDEX ON {t} (tenant_id, seq DESC)",
    "CREATE INDEX ON {t} (tenant_id, ts)",
    "CREATE INDEX ON {t} (tenant_id, identity_id, seq DESC)",
    "CREATE INDEX ON {t} (tenant_id, secret_path text_pattern_ops, seq DESC) WHERE secret_path IS NOT NULL",
    "CREATE INDEX ON {t} (tenant_id, request_id)",
    "CREATE INDEX ON {t} (seq) WHERE extra_data IS NOT NULL",  # stands in for the old "hash IS NULL" index
]
_NEW_INDEXES = [_OLD_INDEXES[i] for i in (1, 2, 3, 4)]
_VARIANTS = {
    "PK only": [],
    "current (PK + 4)": _NEW_INDEXES,
    "current + UNIQUE (id)": [*_NEW_INDEXES, _OLD_INDEXES[0]],
    "current + (tenant, request_id)": [*_NEW_INDEXES, _OLD_INDEXES[5]],
    "previous (PK + 7)": _OLD_INDEXES,
}


async def _server_cpu(conn: asyncpg.Connection) -> float:
    """CPU seconds used so far by the server process of this connection (Linux /proc; 0 if unreadable)."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


async def index_costs(dsn: str, batches: int = 60, batch: int = 500) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for name, indexes in _VARIANTS.items():
            table = "audit_bench_scratch"
            await conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (LIKE audit_log INCLUDING"
                               f" DEFAULTS INCLUDING CONSTRAINTS); ALTER TABLE {table} ADD PRIMARY KEY (seq)")
            for ddl in indexes:
                await conn.execute(ddl.format(t=table))
            rows = [[_entry(i).as_row() for i in range(b * batch, (b + 1) * batch)] for b in range(batches)]
            for r in rows[:5]:  # warm-up
                await conn.copy_records_to_table(table, records=r, columns=COLUMNS)
            cpu0, t0 = await _server_cpu(conn), time.perf_counter()
            for r in rows[5:]:
                await conn.copy_records_to_table(table, records=r, columns=COLUMNS)
            elapsed, cpu = time.perf_counter() - t0, await _server_cpu(conn) - cpu0
            n = (batches - 5) * batch
            print(f"{name:<32} {n / elapsed:>9.0f} entries/s   server CPU {cpu / n * 1e4:5.2f} s per 10k entries")
            await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--database-url")
    ap.add_argument("--index-costs", action="store_true", help="also measure the insert cost of each index set")
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
        if args.index_costs:
            asyncio.run(index_costs(dsn))
    finally:
        if handle is not None:
            handle.stop()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
