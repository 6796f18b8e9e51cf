"""The write-path benchmark of issue 13: the whole ``make dev`` stack, three wrk loads, workers' RSS.

Starts ``python -m devstack.run`` (PostgreSQL with fsync on, Redis, Temporal, the ScaiKey emulator, the worker
with the outbox relay and the audit sealer, 2 API workers, Pebble when installed) on free ports in a private
state directory, with audit on, the access log off and the read/write rate-limit buckets lifted (the limiter's
Redis round trip is still paid). Then, with wrk (64 connections, ~1 KB secret):

1. reads of one secret;
2. writes spread over 1,000 paths;
3. writes to one hot path.

It prints req/s, p50 and p99 for each, the RSS of each API worker and of the Temporal worker, and checks what
the loads left behind: every version of the hot path has its audit entry and its ``secret.updated`` event.
Stops the stack by its pid (SIGTERM; devstack stops each child by its own pid)::

    .venv/bin/python bench/write_path_bench.py [--duration 15] [--openbao]

``--openbao`` also starts an OpenBao server (raft storage on disk, a file audit device, KV v2) and runs the
same loads against it: both servers stay up, each load runs on one right after the other (the first alternating
per round; ``--rounds N`` and the median), because this machine's speed drifts by tens of percent over minutes.
``--hold N`` keeps the ScaiVault stack up N seconds after the loads (for a profiler). ``--pg-stats`` loads
``pg_stat_statements`` into the stack's PostgreSQL and prints, after each ScaiVault load, the statements that
took the most server time (calls, mean and total ms): the database half of the profile in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.secrets_bench import _lua_escape as _lua  # noqa: E402
from bench.secrets_bench import one_kb_payload, put_script, run_wrk  # noqa: E402

READ_PATH = "bench/read/secret-1kb"
HOT_PATH = "bench/hot/secret"


def rss_mb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return kb // 1024 if kb is not None else None


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def pg_statements(database_url: str | None, reset: bool = False, top: int = 8) -> None:
    """Reset pg_stat_statements, or print the statements with the most total execution time."""
    if not database_url:
        return
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            if reset:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                await conn.execute("SELECT pg_stat_statements_reset()")
                return
            rows = await conn.fetch(
                "SELECT calls, total_exec_time, mean_exec_time, regexp_replace(query, '\\s+', ' ', 'g') AS q"
                " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1", top)
            for r in rows:
                print(f"    pg {r['calls']:>8} calls {r['mean_exec_time']:>8.3f} ms mean {r['total_exec_time']:>9.0f} ms"
                      f"  {r['q'][:110]}")
        finally:
            await conn.close()

    try:
        asyncio.run(go())
    except Exception as exc:  # informative only
        print(f"    pg_stat_statements unavailable: {type(exc).__name__}: {exc}")


def precreate(base_url: str, auth: tuple[str, str], many_prefix: str, paths: int, body: str) -> None:
    """Create the write load's paths first, so the measured load is what it says, new versions of existing
    secrets (the same for both servers)."""
    import asyncio

    async def go() -> None:
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=base_url, headers={auth[0]: auth[1], "Content-Type": "application/json"},
                                     timeout=60) as c:
            async def one(i: int) -> None:
                async with sem:
                    r = await c.put(f"{many_prefix}{i}", content=body)
                    if r.status_code // 100 != 2:
                        raise SystemExit(f"pre-creating {many_prefix}{i} failed: {r.status_code} {r.text[:200]}")

            await asyncio.gather(*(one(i) for i in range(paths)))

    asyncio.run(go())


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (and of its children that have exited and been waited for)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


class CpuMeter:
    """CPU seconds each part of the stack spends during a load (per 1,000 requests, so that a loaded machine
    still shows where the work goes): the API workers, the Temporal worker, PostgreSQL (every backend),
    Redis, the Temporal server and wrk's share is what is left of the machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.groups = {"api": pids.get("api"), "worker": pids.get("worker"), "postgres": pids.get("pg") or
                       pids.get("postgres"), "redis": pids.get("redis"), "temporal": pids.get("temporal")}
        self.before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in tree(pid)) for name, pid in self.groups.items() if pid}

    def start(self) -> None:
        self.before = self._now()

    def report(self, requests: float) -> dict[str, float]:
        after = self._now()
        per_k = {n: round((after[n] - self.before.get(n, 0.0)) / max(requests, 1) * 1000, 3) for n in after}
        print("    cpu s per 1,000 requests: " + ", ".join(f"{n} {v}" for n, v in per_k.items()))
        return per_k


def settle(pids: dict[str, int], *, idle_share: float = 0.1, window: float = 3.0, timeout: float = 120.0) -> float:
    """Wait until the stack is idle (start-up jobs done: identity sync, schedules, the ACME seed): its processes
    together use less than ``idle_share`` of one core over ``window`` seconds. Returns the seconds waited."""
    roots = [p for p in pids.values() if p]
    began = time.monotonic()

    def total() -> float:
        return sum(cpu_seconds(q) for p in roots for q in tree(p))

    while time.monotonic() - began < timeout:
        before = total()
        time.sleep(window)
        if total() - before < idle_share * window:
            break
    return time.monotonic() - began


@dataclass
class Target:
    """One server under test and how to load it."""

    name: str
    read_url: str
    base_url: str
    auth: tuple[str, str]
    many_prefix: str
    hot_path: str
    body: str
    meter: CpuMeter | None = None
    settle_pids: dict[str, int] | None = None
    database_url: str | None = None  # --pg-stats
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def scripts(self, paths: int) -> dict[str, tuple[str, str]]:
        header, value = self.auth
        return {
            "read": (self.read_url, f'wrk.headers["{header}"] = "{_lua(value)}"\n'),
            "write_1000_paths": (self.base_url, put_script(header, value, self.many_prefix, self.body, paths)),
            "write_hot_path": (self.base_url, put_script(header, value, self.hot_path, self.body, 1)),
        }

    def prepare(self, args: argparse.Namespace) -> None:
        precreate(self.base_url, self.auth, self.many_prefix, args.write_paths, self.body)
        if self.settle_pids:
            settle(self.settle_pids)  # the creations' events and audit entries relayed and sealed first
        url, script = self.scripts(args.write_paths)["read"]
        run_wrk(url, self.auth[1], script=script, connections=args.connections, duration=args.warmup,
                threads=args.threads)  # warm-up

    def run(self, load: str, args: argparse.Namespace) -> dict[str, Any]:
        url, script = self.scripts(args.write_paths)[load]
        pg_statements(self.database_url, reset=True)
        if self.meter is not None:
            self.meter.start()
        r = run_wrk(url, self.auth[1], script=script, connections=args.connections, duration=args.duration,
                    threads=args.threads)
        print(f"{self.name:>10} {load:>17}: {r['rps']:>8.1f} req/s  p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms"
              f"  non-2xx {r['non_2xx']} {r['socket_errors']}", flush=True)
        if self.meter is not None:
            r["cpu_s_per_1000"] = self.meter.report(r["rps"] * args.duration)
        pg_statements(self.database_url)
        self.runs.setdefault(load, []).append(r)
        return r

    def median(self, load: str) -> dict[str, Any]:
        runs = sorted(self.runs[load], key=lambda r: r["rps"])
        return runs[len(runs) // 2]


LOADS = ("read", "write_1000_paths", "write_hot_path")


def measure(targets: list[Target], args: argparse.Namespace) -> None:
    """Each load ``--rounds`` times per target, the targets one right after the other (the first one
    alternating per round), so that a machine whose speed drifts over minutes treats both alike."""
    for t in targets:
        t.prepare(args)
    for load in LOADS:
        for rnd in range(args.rounds):
            order = targets if rnd % 2 == 0 else list(reversed(targets))
            for t in order:
                t.run(load, args)


# ------------------------------------------------------------------------------------------------ ScaiVault


def start_devstack(state: Path, pg_stats: bool = False) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    from devstack import services as svc

    env = dict(os.environ, SCAIVAULT_DEV_STATE_DIR=str(state), SCAIVAULT_DEV_API_WORKERS="2", LOG_ACCESS="false",
               RATE_LIMIT_OVERRIDES="read_secrets=1000000000,write_secrets=1000000000")
    for name in ("API", "TEMPORAL", "TEMPORAL_UI", "PG", "REDIS", "SCAIKEY"):
        env[f"SCAIVAULT_DEV_{name}_PORT"] = str(svc.free_port())
    if pg_stats:
        env["SCAIVAULT_PG_EXTRA_OPTS"] = ("-c shared_preload_libraries=pg_stat_statements"
                                         " -c pg_stat_statements.track=all")
    log = open(state.parent / "devstack.out", "w")
    proc = subprocess.Popen([sys.executable, "-m", "devstack.run"], cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    stack_file = state / "stack.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"devstack exited early:\n{(state.parent / 'devstack.out').read_text()[-4000:]}")
        if stack_file.exists():
            info = json.loads(stack_file.read_text())
            if info.get("running") and info.get("admin_token") and "identity_synced" in info:
                return proc, info
        time.sleep(0.5)
    raise SystemExit("devstack did not come up within 240 s")


def stop_devstack(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def check_hot_path(api_url: str, token: str, database_url: str) -> None:
    """What a user relies on after the hot-path load: each version has its own audit entry and event, in order."""
    import asyncio

    import asyncpg

    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        meta = c.get(f"/v1/secrets/{HOT_PATH}:metadata").json()
    current = int(meta.get("current_version") or meta.get("version") or 0)

    async def counts() -> tuple[int, int, list[int]]:
        conn = await asyncpg.connect(database_url)
        try:
            audits = await conn.fetchval(
                "SELECT count(DISTINCT version) FROM audit_log WHERE secret_path = $1 AND success AND action = 'write'",
                HOT_PATH)
            rows = await conn.fetch(
                "SELECT (data->>'new_version')::int AS v FROM events WHERE path = $1 "
                "AND event_type = 'secret.updated' ORDER BY seq", HOT_PATH)
            return current, int(audits or 0), [r["v"] for r in rows]
        finally:
            await conn.close()

    try:
        cur, audits, events = asyncio.run(counts())
    except Exception as exc:  # the schema is the server's business; the check is informative
        print(f"hot-path check skipped: {type(exc).__name__}: {exc}")
        return
    in_order = events == sorted(events)
    print(f"hot path: {cur} versions, audit entries for {audits} distinct versions, {len(events)} secret.updated "
          f"events, in order: {in_order}")


@contextmanager
def scaivault(args: argparse.Namespace, body: str) -> Iterator[Target]:
    tmp = Path(tempfile.mkdtemp(prefix="scaivault-writebench-"))
    proc, info = start_devstack(tmp / "dev", pg_stats=args.pg_stats)
    try:
        api, token = info["api_url"], info["admin_token"]
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            for path in (READ_PATH, HOT_PATH):
                r = c.put(f"/v1/secrets/{path}", json={"data": one_kb_payload()})
                if r.status_code not in (200, 201):
                    raise SystemExit(f"seeding {path} failed: {r.status_code} {r.text}")
        pids = info.get("pids") or {}
        waited = settle(pids)
        print(f"scaivault stack idle after {waited:.0f} s (start-up jobs done)", flush=True)
        target = Target("scaivault", read_url=f"{api}/v1/secrets/{READ_PATH}", base_url=api,
                        auth=("Authorization", f"Bearer {token}"), many_prefix="/v1/secrets/bench/write/s",
                        hot_path=f"/v1/secrets/{HOT_PATH}", body=body, meter=CpuMeter(pids), settle_pids=pids,
                        database_url=info["database_url"] if args.pg_stats else None)
        yield target
        rss: dict[str, Any] = {}
        if pids.get("api"):
            rss["api_workers_mb"] = [rss_mb(p) for p in children(pids["api"])]
        if pids.get("worker"):
            rss["worker_mb"] = rss_mb(pids["worker"])
        print(f"RSS: API workers {rss.get('api_workers_mb')} MB (the ~12 MB one is multiprocessing's tracker), "
              f"Temporal worker {rss.get('worker_mb')} MB")
        target.runs["rss"] = [rss]
        time.sleep(2.0)  # let the relay drain before counting events
        check_hot_path(api, token, info["database_url"])
        if args.hold:
            print(f"holding the stack {args.hold}s: {api} (token in {tmp / 'token'})", flush=True)
            (tmp / "token").write_text(token)
            time.sleep(args.hold)
    finally:
        stop_devstack(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ OpenBao

_BAO_CONFIG = """
storage "raft" {{
  path    = "{data}"
  node_id = "bench"
}}
listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
}}
audit "file" "bench" {{
  options {{
    file_path = "{audit}"
  }}
}}
api_addr     = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster}"
disable_mlock = true
ui = false
"""


@contextmanager
def openbao(args: argparse.Namespace, body: str) -> Iterator[Target]:
    from devstack import services as svc

    bao = shutil.which("bao") or str(Path(sys.executable).parent / "bao")
    tmp = Path(tempfile.mkdtemp(prefix="openbao-writebench-"))
    (tmp / "data").mkdir()
    port, cluster = svc.free_port(), svc.free_port()
    (tmp / "config.hcl").write_text(_BAO_CONFIG.format(data=tmp / "data", port=port, cluster=cluster,
                                                                        audit=tmp / "audit.log"))
    log = open(tmp / "bao.log", "w")
    proc = subprocess.Popen([bao, "server", f"-config={tmp / 'config.hcl'}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(100):
                try:
                    c.get("/v1/sys/health")
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            init = c.put("/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}).json()
            c.put("/v1/sys/unseal", json={"key": init["keys"][0]}).raise_for_status()
            token = init["root_token"]
            c.headers["X-Vault-Token"] = token
            for _ in range(100):  # raft elects itself leader
                if c.get("/v1/sys/leader").json().get("is_self"):
                    break
                time.sleep(0.2)
            c.post("/v1/sys/mounts/secret", json={"type": "kv", "options": {"version": "2"}}).raise_for_status()
            audits = c.get("/v1/sys/audit").json()  # the file device comes from the config (OpenBao 2.x)
            if not any(v.get("type") == "file" for v in audits.get("data", audits).values() if isinstance(v, dict)):
                raise SystemExit(f"OpenBao has no file audit device: {audits}")
            time.sleep(1.0)
            for path in (READ_PATH, HOT_PATH):
                c.put(f"/v1/secret/data/{path}", json={"data": one_kb_payload()}).raise_for_status()
        bao_body = json.dumps({"data": json.loads(body)["data"]})
        target = Target("openbao", read_url=f"{url}/v1/secret/data/{READ_PATH}", base_url=url,
                        auth=("X-Vault-Token", token), many_prefix="/v1/secret/data/bench/write/s",
                        hot_path=f"/v1/secret/data/{HOT_PATH}", body=bao_body)
        yield target
        target.runs["rss"] = [{"server_mb": rss_mb(proc.pid)}]
        print(f"RSS: OpenBao server {target.runs['rss'][0]['server_mb']} MB")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=15, help="seconds per load")
    ap.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured reads first")
    ap.add_argument("--write-paths", type=int, default=1000)
    ap.add_argument("--openbao", action="store_true", help="run the same loads against OpenBao too")
    ap.add_argument("--only-openbao", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pg-stats", action="store_true", help="print pg_stat_statements' top statements per load")
    ap.add_argument("--rounds", type=int, default=1, help="measure each load this many times per target (median)")
    ap.add_argument("--hold", type=int, default=0, help="keep the ScaiVault stack up N s after the loads")
    args = ap.parse_args(argv)
    # SIGTERM (and SIGINT, which a background job ignores) unwind through the finally blocks that stop the stacks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk") and not Path("/usr/bin/wrk").exists():
        raise SystemExit("wrk not found: run `sudo apt-get install -y wrk` (Debian package wrk)")
    body = json.dumps({"data": one_kb_payload()})
    with ExitStack() as stack:
        targets = []
        if not args.only_openbao:
            targets.append(stack.enter_context(scaivault(args, body)))
        if args.openbao or args.only_openbao:
            targets.append(stack.enter_context(openbao(args, body)))
        measure(targets, args)
        summary = {t.name: {load: t.median(load) for load in LOADS} for t in targets}
        print(f"\nmedian of {args.rounds} round(s), {args.connections} connections, {args.duration} s each:")
        for load in LOADS:
            row = "  ".join(f"{t.name} {summary[t.name][load]['rps']:>8.1f} req/s p50 {summary[t.name][load]['p50_ms']}"
                            f" p99 {summary[t.name][load]['p99_ms']} ms" for t in targets)
            ratio = ""
            if len(targets) == 2 and summary[targets[1].name][load]["rps"]:
                ratio = f"  ratio {summary[targets[0].name][load]['rps'] / summary[targets[1].name][load]['rps']:.2f}"
            print(f"  {load:>17}: {row}{ratio}")
        results_by_target = {t.name: t.runs for t in targets}
    print(json.dumps({"median": summary, "runs": results_by_target}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
