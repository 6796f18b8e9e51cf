"""Per-secret rotation workflows at scale: attach N secrets, then time a burst of B rotations due at once.
Prints the workflow count, history sizes, worker RSS and the burst time (docs/rotation.md, issue 14).

    .venv/bin/python bench/rotation_bench.py [--secrets 10000] [--burst 1000] [--due-in 120]

Starts its own PostgreSQL, Redis, Temporal dev server and one ``python -m worker`` on free loopback ports in a
temp dir, and stops them by pid at the end. One secret is written through the secrets write path; the others
are cloned rows (their values are never read: a rotation writes a fresh, properly sealed version). B secrets
are anchored so that they fall due together ``--due-in`` seconds after their workflows started; the rest are
due in 90 days (they sleep on their first warn_before timer). The burst time runs from that due instant to the
B-th successful rotation in rotation_history (each is a real version write: generation, envelope encryption,
audit, three outbox events). The Temporal dev server (SQLite) is usually the bottleneck on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from devstack import services as svc  # noqa: E402
from tests.fixtures.app import subprocess_env  # noqa: E402

TENANT, PARTNER = "tnt_bench", "prt_bench"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _rss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its children still running."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(p for c in children for p in _tree(int(c)))]


async def _seed(settings, n: int, burst: int, due_in: float) -> tuple[str, datetime]:
    """One real secret + n-1 clones, one policy, n assignments; returns the policy id and the burst's due time."""
    import redis.asyncio as aioredis

    from audit.recorder import system_context
    from db.engine import Database
    from repositories import rotation as repo
    from repositories.secrets import Owner
    from services.rotation.rotate import worker_state

    db = Database(settings, pool_size=4, application_name="rotation-bench")
    redis = aioredis.Redis.from_url(settings.redis_url)
    state = worker_state(settings, db, redis)
    owner = Owner("tenant", TENANT, PARTNER)
    ctx = system_context("bench", TENANT, partner_id=PARTNER)
    await state.components["secrets"].write(ctx, owner, "bench/s/0", {"data": {"value": "seed"}})
    due_at = datetime.now(UTC) + timedelta(seconds=due_in)
    async with db.raw() as conn, conn.transaction():
        pol = await repo.insert_policy(conn, id="rot_bench", tenant_id=TENANT, created_by="bench", values={
            "name": "bench", "description": "", "interval": "90d", "interval_seconds": 90 * 86400,
            "grace_period": "48h", "grace_seconds": 172800, "warn_before": "30d,7d,1d", "auto_generate": True,
            "secret_policy_id": None, "webhook_ids": [], "is_active": True, "rotation_webhook_id": None})
        await conn.execute(
            "INSERT INTO secrets (scope, owner_id, tenant_id, partner_id, path, secret_type, metadata, current_version,"
            " rotation_policy_id, created_by, updated_by) SELECT scope, owner_id, tenant_id, partner_id,"
            " 'bench/s/' || g, secret_type, metadata, 1, $2, 'bench', 'bench' FROM secrets, generate_series(1, $1 - 1) g"
            " WHERE path = 'bench/s/0'", n, pol["id"])
        await conn.execute("UPDATE secrets SET rotation_policy_id = $1 WHERE path = 'bench/s/0'", pol["id"])
        await conn.execute(
            "INSERT INTO secret_versions (secret_id, version, ciphertext, created_by) SELECT s.id, 1, v.ciphertext,"
            " 'bench' FROM secrets s, secret_versions v JOIN secrets o ON o.id = v.secret_id AND o.path = 'bench/s/0'"
            " WHERE s.path LIKE 'bench/s/%' AND s.path <> 'bench/s/0'")
        # the first `burst` secrets fall due at due_at; the others are anchored now (due in 90 days)
        await conn.execute(
            "INSERT INTO rotation_assignments (secret_id, tenant_id, policy_id, anchor_at, workflow_started)"
            " SELECT id, tenant_id, $1, CASE WHEN split_part(path, '/', 3)::int < $2 THEN $3::timestamptz"
            " - interval '90 days' ELSE now() END, true FROM secrets WHERE path LIKE 'bench/s/%'",
            pol["id"], burst, due_at)
        # warn_before thresholds of the burst's cycle are in the past: recorded, so only the rotation is timed
        await conn.execute(
            "INSERT INTO rotation_marks (secret_id, cycle, mark, emitted) SELECT a.secret_id, 1, t, false"
            " FROM rotation_assignments a, unnest(ARRAY['30d','7d','1d']) t WHERE a.anchor_at < now() - interval '1 day'")
    await redis.aclose()
    await db.dispose()
    return pol["id"], due_at


async def _run(args: argparse.Namespace, tmp: Path, handles: list[svc.Handle]) -> None:
    from pydantic import SecretStr

    from core.errors import AppError
    from core.settings import Settings
    from db.migrate import upgrade_to_head
    from services.rotation.schedule import signal, workflow_id
    from worker.client import connect

    pg = svc.start_postgres(tmp / "pg", svc.free_port(), fast_unsafe=True, database="bench")
    handles.append(pg)
    redis = svc.start_redis(tmp / "redis", svc.free_port())
    handles.append(redis)
    temporal = svc.start_temporal(tmp / "temporal", svc.free_port())
    handles.append(temporal)
    settings = Settings(
        env="test", database_url=pg.url, redis_url=redis.url, temporal_address=temporal.address,
        temporal_task_queue_prefix="bench-", kms_local_key=SecretStr(_key()), token_hmac_key=SecretStr(_key()),
        audit_hmac_key=SecretStr(_key()), temporal_codec_key=SecretStr(_key()),
        scaikey_client_secret=SecretStr(secrets.token_urlsafe(16)),
    )
    await asyncio.to_thread(upgrade_to_head, settings.database_url)
    _, due_at = await _seed(settings, args.secrets, args.burst, args.due_in)
    log = tmp / "worker.log"
    env = {**subprocess_env(settings), "SCAIVAULT_WORKER_QUEUES": "rotation"}
    worker = svc.start_process("worker", [sys.executable, "-m", "worker"], env, log,
                               svc.log_says(log, svc.WORKER_READY_TEXT), timeout=60, cwd=ROOT)
    handles.append(worker)
    client = await connect(settings)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        ids = [r["secret_id"] for r in await conn.fetch("SELECT secret_id FROM rotation_assignments ORDER BY 1")]
        sem = asyncio.Semaphore(args.concurrency)

        async def start(sid: int) -> None:
            async with sem:
                for attempt in range(6):  # the shared box can starve the dev server past the RPC deadline
                    try:
                        await signal(client, settings, TENANT, sid, reason="bench")
                        return
                    except AppError:
                        if attempt == 5:
                            raise
                        await asyncio.sleep(2 ** attempt)

        t0 = time.perf_counter()
        await asyncio.gather(*(start(sid) for sid in ids))
        started = time.perf_counter() - t0
        rss_idle = _rss_mb(worker.pid)
        wait = (due_at - datetime.now(UTC)).total_seconds()
        if wait < 0:
            print(f"warning: starting the workflows took past the due time by {-wait:.0f}s (raise --due-in)")
        await asyncio.sleep(max(0.0, wait))
        procs = {"temporal": temporal.pid, "worker": worker.pid, "postgres": pg.pid}
        cpu0 = {k: _cpu_s(v) for k, v in procs.items()}
        print(f"burst due now (worker pid {worker.pid})", flush=True)
        burst_start = time.perf_counter()
        while (n := await conn.fetchval("SELECT count(*) FROM rotation_history WHERE status = 'success'")) < args.burst:
            if time.perf_counter() - burst_start > args.timeout:
                raise SystemExit(f"timeout: {n}/{args.burst} rotations")
            await asyncio.sleep(0.2)
        burst = time.perf_counter() - burst_start
        cpu = {k: _cpu_s(v) - cpu0[k] for k, v in procs.items()}
        rss_peak = _rss_mb(worker.pid)
        versions = await conn.fetchval("SELECT count(*) FROM secret_versions WHERE version = 2")
        sizes = []
        for sid in (ids[0], ids[-1]):  # a rotated one and a sleeping one
            h = client.get_workflow_handle(workflow_id(settings, TENANT, sid))
            hist = await h.fetch_history()
            sizes.append((sid, len(hist.events), sum(e.ByteSize() for e in hist.events)))
        count: int | str
        try:
            running = await client.count_workflows("WorkflowType = 'SecretRotation' AND ExecutionStatus = 'Running'")
            count = running.count
        except Exception as exc:  # visibility counting unsupported
            count = f"n/a ({type(exc).__name__})"
    finally:
        await conn.close()
    print(f"attached secrets={args.secrets} running rotation workflows={count}")
    print(f"signal-with-start of {len(ids)} workflows: {started:.1f}s ({len(ids) / started:.0f}/s)")
    for sid, events, size in sizes:
        print(f"history of rotation/{TENANT}/{sid}: {events} events, {size / 1024:.1f} KiB")
    print(f"worker RSS: {rss_idle:.0f} MiB with every workflow started, {rss_peak:.0f} MiB after the burst")
    print(f"burst: {args.burst} rotations due at once done in {burst:.1f}s ({args.burst / burst:.1f}/s); "
          f"new versions written: {versions}")
    print("CPU seconds during the burst: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
          + f" (wall {burst:.1f}s, {os.cpu_count()} cores)")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secrets", type=int, default=10000)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--due-in", type=float, default=120.0, help="seconds from seeding to the burst's due time")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sv-rotation-bench-"))
    handles: list[svc.Handle] = []
    try:
        asyncio.run(_run(args, tmp, handles))
    finally:
        svc.stop_all(handles, timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
