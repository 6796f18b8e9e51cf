"""What a workflow per lease costs the Temporal server and the worker (the design question of issue 17 item 4).

    .venv/bin/python bench/dynamic_design_bench.py [--leases 1000]

Starts a private Temporal dev server (SQLite file) and an in-process worker, then starts ``--leases`` minimal
per-lease workflows shaped like the per-lease design (each sleeps on one timer until its expiry, 1 h away, with a
``revoke_now`` signal handler and a ``state`` query) and measures: start throughput, Temporal server RSS and
database size before/after, history events per workflow, and the worker's RSS while they are cached. The sharded
design (one revoker per engine) costs one such workflow per engine whatever the lease count, so its numbers are
the N=1 row. Extrapolate linearly to 100,000 leases (the docs/dynamic.md table).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@workflow.defn(name="BenchLease")
class BenchLease:
    def __init__(self) -> None:
        self.revoke = False

    @workflow.run
    async def run(self, seconds: int) -> str:
        try:
            await workflow.wait_condition(lambda: self.revoke, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            pass
        return "revoked"

    @workflow.signal
    def revoke_now(self) -> None:
        self.revoke = True

    @workflow.query
    def state(self) -> bool:
        return self.revoke


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.exists())


async def run(n: int) -> None:
    from devstack import services as svc

    tmp = Path(tempfile.mkdtemp(prefix="scaivault-lease-design-"))
    handle = svc.start_temporal(tmp / "temporal", svc.free_port())
    try:
        db_file = next((tmp / "temporal").rglob("*.db"), tmp / "temporal" / "temporal.db")
        client = await Client.connect(handle.address)
        server_pid = handle.pid
        rss0, db0 = _rss_kb(server_pid), _db_bytes(db_file)
        self_rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        async with Worker(client, task_queue="bench-leases", workflows=[BenchLease], max_cached_workflows=n + 10,
                      workflow_runner=UnsandboxedWorkflowRunner()):
            t0 = time.perf_counter()
            sem = asyncio.Semaphore(32)

            async def start(i: int) -> None:
                async with sem:
                    await client.start_workflow(BenchLease.run, 3600, id=f"lease/bench/{i}", task_queue="bench-leases")

            await asyncio.gather(*(start(i) for i in range(n)))
            started = time.perf_counter() - t0
            await asyncio.sleep(3)  # let every first workflow task run (the timer is then pending)
            hist = await client.get_workflow_handle(f"lease/bench/{n // 2}").fetch_history()
            events = len(hist.events)
            size = len(hist.to_json())
            rss1, db1 = _rss_kb(server_pid), _db_bytes(db_file)
            self_rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"per-lease workflows: {n}")
            print(f"  start: {n / started:.0f} workflows/s ({started:.1f}s)")
            print(f"  history per workflow while waiting: {events} events, {size} bytes JSON")
            print(f"  temporal server RSS: {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB"
                  f" (+{(rss1 - rss0) / max(n, 1):.1f} KiB per workflow)")
            print(f"  temporal db: {db0 / 1e6:.1f} -> {db1 / 1e6:.1f} MB (+{(db1 - db0) / max(n, 1) / 1024:.1f} KiB per"
                  " workflow)")
            print(f"  worker (this process) max RSS: {self_rss0 / 1024:.0f} -> {self_rss1 / 1024:.0f} MiB"
                  f" (+{(self_rss1 - self_rss0) / max(n, 1):.1f} KiB per cached workflow)")
            scale = 100_000 / max(n, 1)
            print(f"  extrapolated to 100,000 leases: server +{(rss1 - rss0) * scale / 1024 / 1024:.1f} GiB RSS,"
                  f" db +{(db1 - db0) * scale / 1e9:.2f} GB, 100,000 timers, worker cache"
                  f" +{(self_rss1 - self_rss0) * scale / 1024 / 1024:.1f} GiB if all cached,"
                  f" {100_000 / (n / started) / 60:.1f} min to (re)start them")
            for i in range(n):  # clean up: every workflow ends
                await client.get_workflow_handle(f"lease/bench/{i}").signal(BenchLease.revoke_now)
    finally:
        svc.stop_all([handle], timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leases", type=int, default=1000)
    args = ap.parse_args()
    asyncio.run(run(args.leases))
    _ = os
    return 0


if __name__ == "__main__":
    sys.exit(main())
