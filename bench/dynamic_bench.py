"""Dynamic PostgreSQL credentials: issuing throughput and a 1,000-lease expiry storm (issue 17).

    .venv/bin/python bench/dynamic_bench.py --spawn [--duration 10] [--concurrency 16] [--storm 1000]
    .venv/bin/python bench/dynamic_bench.py --api-url URL --token T --database-url DB --target-admin-url PG [...]

Prints:

* credentials issued per second (``POST /v1/dynamic/engines/{engine}/creds/{role}``: a lease row, CREATE ROLE at
  the target, audit row, ``lease.created``), with p50/p99 latency and 429/error counts; the load generator is a
  minimal keep-alive HTTP/1.1 client (httpx cost as much CPU per request as the API itself on a 2-core box);
* with ``--spawn`` on Linux: the CPU milliseconds each component spent per credential while issuing (API, worker,
  ScaiVault's PostgreSQL backends, the target database's backends, Temporal, Redis, this load generator; from
  /proc) and the CPU-bound ceiling that implies for the machine's cores — the figure that stays comparable when
  the machine is shared with other work, where credentials/s does not;
* for ``--storm`` leases expiring at the same instant: how long after that instant the last one was revoked (role
  dropped at the target, lease ``revoked``, audit + ``lease.expired`` written), the revocation rate, and the peak
  number of connections the target saw from the revoker (``application_name = scaivault-revoker``, sampled every
  20 ms from ``pg_stat_activity``) and in total from ScaiVault.

``--spawn`` starts PostgreSQL (which also hosts the target database), Redis, Temporal, the ScaiKey emulator, the
API and one worker on free loopback ports in a temp dir (rate limits for issuing lifted), and stops them by pid.
Against a running stack (``make dev``) pass the API URL, a token with ``admin`` (or ``dynamic:manage`` +
``secrets:write``), ScaiVault's database URL (to align the storm's expiries) and a superuser URL of the target
cluster (to create the target database and its CREATEROLE root). The storm's leases are issued with TTL ``--lead``
and their ``expires_at`` then set to the latest of them (the revoker slept until the earliest, re-reads PostgreSQL
and sleeps until that instant: the path of leases issued to expire together).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


@dataclass
class Result:
    ok: int = 0
    limited: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    lease_ids: list[str] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


async def setup(api: httpx.AsyncClient, h: dict[str, str], target_admin_url: str) -> tuple[str, str, str, str]:
    """Target database + CREATEROLE root; root secret, policy, engine and role in ScaiVault.
    (engine, role, root, target database)"""
    tag = uuid.uuid4().hex[:8]
    db, root, pw = f"bench_target_{tag}", f"bench_root_{tag}", secrets.token_hex(16)
    conn = await asyncpg.connect(target_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
        await conn.execute(f"CREATE ROLE \"{root}\" LOGIN CREATEROLE PASSWORD '{pw}'")
        await conn.execute(f'GRANT ALL ON DATABASE "{db}" TO "{root}" WITH GRANT OPTION')
    finally:
        await conn.close()
    r = await api.post("/v1/policies", headers=h, json={
        "name": f"bench-dynamic-{tag}", "rules": [{"path_pattern": "bench/**", "permissions": ["read", "write"]}]})
    r.raise_for_status()
    who = (await api.get("/v1/auth/whoami", headers=h)).json()
    ident = who.get("identity_id") or who.get("identity", {}).get("id")
    kind = "service_account" if str(ident).startswith("sa:") else "user"
    r = await api.post(f"/v1/policies/{r.json()['id']}/bindings", headers=h,
                       json={"identity_type": kind, "identity_id": ident})
    if r.status_code != 201:
        raise SystemExit(f"binding failed: {r.status_code} {r.text}")
    r = await api.put(f"/v1/secrets/bench/dynamic/{tag}/root", headers=h,
                      json={"data": {"username": root, "password": pw}})
    r.raise_for_status()
    p = urlsplit(target_admin_url)
    engine, role = f"bench-{tag}", "bench"
    r = await api.post("/v1/dynamic/engines", headers=h, json={
        "name": engine, "type": "database", "max_ttl": "24h",
        "config": {"plugin": "postgresql", "root_credentials_path": f"bench/dynamic/{tag}/root",
                   "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@{p.hostname}:{p.port}/{db}"}})
    if r.status_code != 201:
        raise SystemExit(f"engine create failed: {r.status_code} {r.text}")
    r = await api.post(f"/v1/dynamic/engines/{engine}/roles", headers=h, json={
        "name": role, "creation_statements": [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"]})
    r.raise_for_status()
    return engine, role, root, db


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client for the issuing loop: the load generator shares the 2 cores with the
    stack, and httpx spent ~2 ms of CPU per request (as much as the API's own work), which the stack then lacked.
    Requests are pre-encoded; responses are read by Content-Length (uvicorn always sends it for JSON)."""

    def __init__(self, base_url: str) -> None:
        p = urlsplit(base_url)
        self.tls = p.scheme == "https"
        self.host, self.port = p.hostname or "127.0.0.1", p.port or (443 if self.tls else 80)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls or None)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        if b"connection: close" in head.lower():
            self.writer.close()
            self.writer = None
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def issue(api: httpx.AsyncClient, h: dict[str, str], url: str, *, duration: float | None, count: int | None,
                concurrency: int, ttl: str) -> Result:
    res = Result()
    deadline = time.perf_counter() + (duration or 1e9)
    todo = [count or 0]
    body = orjson.dumps({"ttl": ttl})
    host = urlsplit(str(api.base_url)).netloc
    raw = (f"POST {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {h['Authorization']}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    async def one() -> None:
        conn = RawConnection(str(api.base_url))
        try:
            while time.perf_counter() < deadline:
                if count is not None:
                    if todo[0] <= 0:
                        return
                    todo[0] -= 1
                t0 = time.perf_counter()
                status, text = await conn.post(raw)
                if status == 200:
                    res.ok += 1
                    res.latencies.append(time.perf_counter() - t0)
                    res.lease_ids.append(orjson.loads(text)["lease_id"])
                elif status == 429:
                    res.limited += 1
                else:
                    res.failed += 1
                    if res.failed <= 3:
                        print(f"  error {status}: {text[:200]!r}", flush=True)
        finally:
            conn.close()

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return res


# ------------------------------------------------------------------------------ CPU per credential (--spawn)
def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, command line, CPU seconds user+system) from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, str, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(name)] = (int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / tick)
    return out


TARGET = "target PostgreSQL (CREATE ROLE)"
LOADGEN = "load generator (this process)"


def _component(cmd: str, target_db: str) -> str:
    if cmd.startswith("postgres: "):  # "postgres: <user> <database> <client> <state>"
        parts = cmd.split()
        if len(parts) > 3 and parts[2] == target_db:
            return TARGET
        return "ScaiVault PostgreSQL" if len(parts) > 3 else "PostgreSQL background"
    for key, label in (("uvicorn", "API"), ("-m worker", "worker"), ("temporal", "Temporal"),
                       ("redis", "Redis"), ("scaikey", "ScaiKey emulator"), ("postgres", "PostgreSQL background")):
        if key in cmd:
            return label
    return LOADGEN


def cpu_sample(root_marker: str, target_db: str) -> dict[str, float]:
    """CPU seconds so far per component of the spawned stack (this process's descendants and the PostgreSQL
    started in the bench's temp dir)."""
    table = _proc_table()
    mine = {os.getpid()} | {pid for pid, (_, cmd, _) in table.items() if root_marker in cmd}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in table.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    out: dict[str, float] = {}
    for pid in mine:
        if pid in table:
            key = _component(table[pid][1], target_db)
            out[key] = out.get(key, 0.0) + table[pid][2]
    return out


async def storm(db_url: str, target_admin_url: str, root: str, lease_ids: list[str], lead: float) -> None:
    conn = await asyncpg.connect(db_url)
    tconn = await asyncpg.connect(target_admin_url)
    try:
        # every storm lease gets the latest expiry among them: never earlier than the revoker's current timer,
        # which it set (from PostgreSQL) at the earliest one, so it wakes, finds nothing due yet and sleeps until
        # exactly this instant: the same path as leases issued to expire together
        at = await conn.fetchval("SELECT max(expires_at) FROM dynamic_leases WHERE id = ANY($1)", lease_ids)
        await conn.execute("UPDATE dynamic_leases SET expires_at = $2 WHERE id = ANY($1)", lease_ids, at)
        users = [r["username"] for r in await conn.fetch("SELECT username FROM dynamic_leases WHERE id = ANY($1)",
                                                         lease_ids)]
        peak_revoker = peak_all = 0
        t0 = time.time()
        while True:
            row = await tconn.fetchrow(
                "SELECT count(*) FILTER (WHERE application_name = 'scaivault-revoker') AS rv, count(*) AS total"
                " FROM pg_stat_activity WHERE usename = $1", root)
            peak_revoker, peak_all = max(peak_revoker, row["rv"]), max(peak_all, row["total"])
            left = await conn.fetchval("SELECT count(*) FROM dynamic_leases WHERE id = ANY($1) AND status <> 'revoked'",
                                       lease_ids)
            if left == 0:
                break
            if time.time() - t0 > lead + 300:
                print(f"  storm: {left} leases still not revoked {lead + 300:.0f}s later", flush=True)
                break
            await asyncio.sleep(0.02)
        last = await conn.fetchval("SELECT max(revoked_at) FROM dynamic_leases WHERE id = ANY($1)", lease_ids)
        first = await conn.fetchval("SELECT min(revoked_at) FROM dynamic_leases WHERE id = ANY($1)", lease_ids)
        roles_left = await tconn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1::text[])", users)
        span = (last - at).total_seconds()
        rate = len(lease_ids) / max((last - first).total_seconds(), 1e-3)
        print(f"    storm: {len(lease_ids)} leases expiring together; last revoked {span:.2f}s after expiry"
              f" (first {(first - at).total_seconds():.2f}s; {rate:.0f} revocations/s); peak target connections:"
              f" revoker {peak_revoker}, all ScaiVault {peak_all}; storm roles left at the target: {roles_left}",
              flush=True)
    finally:
        await conn.close()
        await tconn.close()


async def bench(api_url: str, token: str, db_url: str, target_admin_url: str, *, duration: float, concurrency: int,
                storm_size: int, lead: float, cpu_marker: str | None = None) -> None:
    h = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as api:
        engine, role, root, target_db = await setup(api, h, target_admin_url)
        url = f"/v1/dynamic/engines/{engine}/creds/{role}"
        await issue(api, h, url, duration=None, count=concurrency * 2, concurrency=concurrency, ttl="1h")  # warm
        before = cpu_sample(cpu_marker, target_db) if cpu_marker else {}
        t0 = time.perf_counter()
        res = await issue(api, h, url, duration=duration, count=None, concurrency=concurrency, ttl="1h")
        elapsed = time.perf_counter() - t0
        print(f"    issue: {res.ok / elapsed:8.1f} credentials/s  ({res.ok} in {elapsed:.1f}s, concurrency"
              f" {concurrency}, p50 {_pct(res.latencies, 0.5):.0f} ms, p99 {_pct(res.latencies, 0.99):.0f} ms,"
              f" 429s {res.limited}, errors {res.failed})", flush=True)
        if cpu_marker and res.ok:
            after = cpu_sample(cpu_marker, target_db)
            per = {k: 1000 * (v - before.get(k, 0.0)) / res.ok for k, v in after.items()}
            per = {k: v for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.005}
            total = sum(per.values())
            print(f"    CPU per credential: {total:.2f} ms in all ("
                  + ", ".join(f"{k} {v:.2f}" for k, v in per.items()) + ")", flush=True)
            cores = os.cpu_count() or 1
            own = total - per.get(TARGET, 0.0) - per.get(LOADGEN, 0.0)
            print(f"    => CPU-bound ceiling on {cores} cores: {1000 * cores / total:.0f} credentials/s with the target"
                  f" and the load generator on the same cores; {1000 * cores / max(own, 1e-6):.0f}/s for ScaiVault"
                  f" alone ({own:.2f} ms per credential: target and load generator on other hosts)", flush=True)
        if storm_size:
            res = await issue(api, h, url, duration=None, count=storm_size, concurrency=concurrency,
                              ttl=f"{int(lead)}s")
            if res.ok < storm_size:
                print(f"    storm: only {res.ok} of {storm_size} leases issued", flush=True)
            await storm(db_url, target_admin_url, root, res.lease_ids, lead)
        _ = statistics


def spawn_and_run(args: argparse.Namespace) -> None:
    import base64
    import shutil
    import tempfile

    from devstack import services as svc
    from devstack.admin_token import mint_admin_token

    tmp = Path(tempfile.mkdtemp(prefix="scaivault-dynamic-bench-"))
    handles: list[Any] = []

    def rnd() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    try:
        pg = svc.start_postgres(tmp / "pg", svc.free_port())
        redis = svc.start_redis(tmp / "redis", svc.free_port())
        temporal = svc.start_temporal(tmp / "temporal", svc.free_port())
        handles += [pg, redis, temporal]
        client_secret = secrets.token_urlsafe(24)
        sk_port = svc.free_port()
        sk_url = f"http://127.0.0.1:{sk_port}"
        handles.append(svc.start_process(
            "scaikey", [sys.executable, "-m", "scaikey_emulator", "--host", "127.0.0.1", "--port", str(sk_port),
                        "--seed", "dev", f"--scaivault-client-secret={client_secret}"],
            dict(os.environ, PYTHONUNBUFFERED="1"), tmp / "scaikey.log", svc.http_ready(sk_url + "/_emulator/health"),
            timeout=30, url=sk_url, cwd=REPO_ROOT))
        api_port = svc.free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        env = dict(os.environ, ENV="prod", PYTHONUNBUFFERED="1", DATABASE_URL=pg.url, REDIS_URL=redis.url,
                   TEMPORAL_ADDRESS=temporal.address, KMS_PROVIDER="local", KMS_LOCAL_KEY=rnd(),
                   TOKEN_HMAC_KEY=rnd(), AUDIT_HMAC_KEY=rnd(), TEMPORAL_CODEC_KEY=rnd(),
                   SCAIKEY_BASE_URL=sk_url, SCAIKEY_CLIENT_SECRET=client_secret, SCAIKEY_AUDIENCE="scaivault",
                   BASE_URL=api_url, LOG_LEVEL="warning",
                   RATE_LIMIT_OVERRIDES="dynamic_generate=1000000000,dynamic_admin=1000000,write_secrets=1000000")
        argv = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(api_port), "--workers", str(args.workers), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--no-proxy-headers", "--log-level", "warning"]
        handles.append(svc.start_process("api", argv, env, tmp / "api.log",
                                         svc.http_ready(api_url + "/v1/health/ready"), timeout=90, url=api_url,
                                         cwd=REPO_ROOT))
        handles.append(svc.start_process("worker", [sys.executable, "-m", "worker"], dict(env, LOG_LEVEL="info"),
                                         tmp / "worker.log",
                                         svc.log_says(tmp / "worker.log", svc.WORKER_READY_TEXT), timeout=90,
                                         cwd=REPO_ROOT))
        token = mint_admin_token(sk_url)
        if not token:
            raise SystemExit("could not mint a token from the emulator")
        asyncio.run(bench(api_url, token, pg.url, pg.extra["admin_url"], duration=args.duration,
                          concurrency=args.concurrency, storm_size=args.storm, lead=args.lead,
                          cpu_marker=str(tmp) if sys.platform == "linux" else None))
    finally:
        svc.stop_all(handles, timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spawn", action="store_true", help="start the whole stack on free ports, then benchmark")
    ap.add_argument("--api-url")
    ap.add_argument("--token", default=os.environ.get("SCAIVAULT_TOKEN"))
    ap.add_argument("--database-url", help="ScaiVault's PostgreSQL (aligns the storm's expiries)")
    ap.add_argument("--target-admin-url", help="superuser URL of the target cluster")
    ap.add_argument("--workers", type=int, default=1, help="API worker processes (--spawn)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of issuing")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--storm", type=int, default=1000, help="leases expiring together (0: skip)")
    ap.add_argument("--lead", type=float, default=30.0,
                    help="TTL of the storm's leases (s); must exceed the time it takes to issue them")
    args = ap.parse_args(argv)
    if args.spawn:
        spawn_and_run(args)
        return 0
    if not (args.api_url and args.token and args.database_url and args.target_admin_url):
        ap.error("--api-url, --token, --database-url and --target-admin-url are required (or --spawn)")
    asyncio.run(bench(args.api_url, args.token, args.database_url, args.target_admin_url, duration=args.duration,
                      concurrency=args.concurrency, storm_size=args.storm, lead=args.lead))
    return 0


if __name__ == "__main__":
    sys.exit(main())
