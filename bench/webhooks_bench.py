"""End-to-end webhook throughput: commit a burst of events to the outbox and time until a local receiver has
verified every delivery. Prints events/s.

    .venv/bin/python bench/webhooks_bench.py [--events 1000] [--webhooks 1]

Starts its own PostgreSQL, Redis, Temporal dev server and one ``python -m worker`` on free loopback ports in a
temp dir, and stops them by pid at the end. The number covers relay dispatch (outbox -> workflow starts) plus
the delivery workflows (activity, HTTP POST, delivery log) on this machine; the Temporal dev server (SQLite)
is usually the bottleneck, a production cluster scales by adding workers and history shards. It also prints
the load average and the CPU seconds each server used during the run (where the time went).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from devstack import services as svc  # noqa: E402
from repositories.events import webhooks as webhooks_repo  # noqa: E402
from repositories.events.outbox import emit  # noqa: E402
from tests.fixtures.app import subprocess_env  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its reaped children (Linux /proc), 0.0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _process_tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(p for c in children for p in _process_tree(int(c)))]


def _cpu_report(handles: list[svc.Handle]) -> str:
    parts = [f"{h.name} {sum(_cpu_seconds(p) for p in _process_tree(h.pid)):.1f}s" for h in handles]
    return "cpu: " + ", ".join(parts) + f", bench {_cpu_seconds(os.getpid()):.1f}s"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def _run(args: argparse.Namespace, tmp: Path, handles: list[svc.Handle]) -> None:
    from core.settings import Settings
    from db.migrate import upgrade_to_head
    from services.events.webhook_secrets import SecretBox

    pg = svc.start_postgres(tmp / "pg", svc.free_port(), fast_unsafe=True, database="bench")
    handles.append(pg)
    redis = svc.start_redis(tmp / "redis", svc.free_port())
    handles.append(redis)
    temporal = svc.start_temporal(tmp / "temporal", svc.free_port())
    handles.append(temporal)
    settings = Settings(
        env="test", database_url=pg.url, redis_url=redis.url, temporal_address=temporal.address,
        temporal_task_queue_prefix="bench-", kms_local_key=_key(), token_hmac_key=_key(), audit_hmac_key=_key(),
        temporal_codec_key=_key(), scaikey_client_secret=secrets.token_urlsafe(16), webhook_allow_private=True,
        event_relay_sweep_seconds=1,
    )
    await asyncio.to_thread(upgrade_to_head, settings.database_url)
    hook_secret = secrets.token_urlsafe(32)
    rx = Receiver([hook_secret]).start()
    box = SecretBox(settings)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        for i in range(args.webhooks):
            wid = f"wh_bench{i}"
            await webhooks_repo.insert(conn, id=wid, tenant_id="tnt_bench", partner_id=None, name=f"bench{i}",
                                       url=rx.url, secret_enc=box.seal("tnt_bench", wid, hook_secret),
                                       events=["*"], filters={}, enabled=True, created_by="bench")
        log = tmp / "worker.log"
        worker = svc.start_process("worker", [sys.executable, "-m", "worker"], subprocess_env(settings), log,
                                   svc.log_says(log, svc.WORKER_READY_TEXT), timeout=60, cwd=ROOT)
        handles.append(worker)
        await asyncio.sleep(1)
        expected = args.events * args.webhooks
        start = time.perf_counter()
        async with conn.transaction():
            for _ in range(args.events):
                await emit(conn, event_type="secret.created", tenant_id="tnt_bench", partner_id=None,
                           identity_id="sa:bench", path="bench/app/db", data={"version": 1})
        committed = time.perf_counter()
        while len(rx.successes()) < expected:
            if time.perf_counter() - start > args.timeout:
                raise SystemExit(f"timeout: {len(rx.successes())}/{expected} delivered")
            await asyncio.sleep(0.05)
        done = time.perf_counter()
        dispatched = await conn.fetchval("SELECT max(dispatched_at) - min(created_at) FROM events")
        cpu = _cpu_report(handles)
        load = os.getloadavg()
    finally:
        await conn.close()
        rx.stop()
    bad = sum(1 for r in rx.snapshot() if not r.verified)
    total = done - start
    print(f"events={args.events} webhooks={args.webhooks} deliveries={expected} signature_failures={bad}")
    print(f"commit {committed - start:.2f}s, outbox fully dispatched after {dispatched.total_seconds():.2f}s")
    print(f"{cpu} (whole run, including start-up)")
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"all delivered in {total:.2f}s -> {expected / total:.1f} deliveries/s ({args.events / total:.1f} events/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--webhooks", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sv-webhooks-bench-"))
    handles: list[svc.Handle] = []
    try:
        asyncio.run(_run(args, tmp, handles))
    finally:
        svc.stop_all(handles, timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
