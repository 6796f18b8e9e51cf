"""HTTP benchmark of the secrets API with ``wrk``: 1 KB secret reads and writes, 64 connections.

Against a running API (starts nothing)::

    .venv/bin/python bench/secrets_bench.py --api-url http://127.0.0.1:8200 --token "$TOKEN"

Self-contained (starts PostgreSQL, Redis, Temporal, the ScaiKey emulator and the API with 2 uvicorn workers
on free ports in a temp dir via devstack.services, runs the benchmark, stops them by pid)::

    .venv/bin/python bench/secrets_bench.py --spawn [--duration 15] [--pg-fast-unsafe]

The token needs secrets:read and secrets:write (a rate limiter, when wired, must allow the load: --spawn
keeps rate limiting ON, with the read/write categories lifted so one benchmark identity is not throttled:
the limiter's Redis round trip is part of what is measured). Prints req/s, p50 and p99 per scenario, plus a JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

WRK = shutil.which("wrk") or "/usr/bin/wrk"
READ_PATH = "bench/read/secret-1kb"


def one_kb_payload() -> dict[str, str]:
    return {"username": "bench-user", "password": secrets.token_hex(496)}  # ~1 KB of JSON


# ------------------------------------------------------------------------------------------ wrk


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    lat = {p: re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M) for p in ("50", "99")}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:(.*)", output)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(*lat["50"].groups()) if lat["50"] else None,
        "p99_ms": _ms(*lat["99"].groups()) if lat["99"] else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def _lua_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def put_script(auth_header: str, token: str, url_prefix: str, body: str, paths: int) -> str:
    """wrk Lua: PUT ``body`` to ``url_prefix .. (n % paths)`` (paths == 1: always the same path)."""
    target = f'"{_lua_escape(url_prefix)}"' if paths == 1 else f'"{_lua_escape(url_prefix)}" .. (counter % {paths})'
    return f"""
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["{auth_header}"] = "{_lua_escape(token)}"
local body = "{_lua_escape(body)}"
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, {target}, nil, body)
end
"""


def write_script(token: str, paths: int, body: str) -> str:
    return put_script("Authorization", f"Bearer {token}", "/v1/secrets/bench/write/s", body, paths)


def run_wrk(url: str, token: str, *, connections: int, duration: int, threads: int,
            script: str | None = None) -> dict[str, Any]:
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    script_file = None
    if script is not None:
        fd, script_file = tempfile.mkstemp(suffix=".lua")
        with os.fdopen(fd, "w") as fh:
            fh.write(script)
        argv += ["-s", script_file]
    else:
        argv += ["-H", f"Authorization: Bearer {token}"]
    argv.append(url)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        if script_file:
            os.unlink(script_file)
    return parse_wrk(out)


# ---------------------------------------------------------------------------------------- scenarios


def seed(api_url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=10) as c:
        r = c.put(f"/v1/secrets/{READ_PATH}", json={"data": one_kb_payload()})
        if r.status_code not in (200, 201):
            raise SystemExit(f"seeding failed: {r.status_code} {r.text}")
        r = c.get(f"/v1/secrets/{READ_PATH}")
        if r.status_code != 200:
            raise SystemExit(f"read check failed: {r.status_code} {r.text}")
        print(f"seeded {READ_PATH}: response {len(r.content)} bytes")


def benchmark(api_url: str, token: str, *, connections: int, duration: int, threads: int,
              write_paths: int, warmup: int, reads_only: bool = False) -> dict[str, Any]:
    seed(api_url, token)
    read_url = f"{api_url}/v1/secrets/{READ_PATH}"
    if warmup:
        run_wrk(read_url, token, connections=connections, duration=warmup, threads=threads)
    results = {"read": run_wrk(read_url, token, connections=connections, duration=duration, threads=threads)}
    body = json.dumps({"data": one_kb_payload()})
    script = write_script(token, write_paths, body)
    if not reads_only:
        results["write"] = run_wrk(api_url, token, connections=connections, duration=duration, threads=threads,
                                   script=script)
    for name, r in results.items():
        print(f"{name:>5}: {r['rps']:>9.1f} req/s   p50 {r['p50_ms']} ms   p99 {r['p99_ms']} ms"
              f"   non-2xx {r['non_2xx']} {r['socket_errors']}")
    print(json.dumps({"connections": connections, "duration_s": duration, **results}))
    return results


# -------------------------------------------------------------------------------------------- spawn


def print_worker_rss(parent_pid: int) -> None:
    """RSS of each uvicorn worker process (children of the supervisor), from /proc."""
    children = Path(f"/proc/{parent_pid}/task/{parent_pid}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "?")
        print(f"api worker pid {pid}: RSS {int(rss) // 1024 if rss != '?' else '?'} MB")


def spawn_and_run(args: argparse.Namespace) -> None:
    import base64

    from devstack import services as svc
    from devstack.admin_token import ensure_dev_admin_policy, mint_admin_token

    tmp = Path(tempfile.mkdtemp(prefix="scaivault-bench-"))
    handles: list[svc.Handle] = []
    try:
        pg = svc.start_postgres(tmp / "pg", svc.free_port(), fast_unsafe=args.pg_fast_unsafe)
        handles.append(pg)
        redis = svc.start_redis(tmp / "redis", svc.free_port())
        handles.append(redis)
        temporal = svc.start_temporal(tmp / "temporal", svc.free_port())
        handles.append(temporal)
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

        def rnd() -> str:
            return base64.b64encode(os.urandom(32)).decode()

        prom = tmp / "prom"
        prom.mkdir()
        env = dict(os.environ, ENV="prod", PYTHONUNBUFFERED="1", DATABASE_URL=pg.url, REDIS_URL=redis.url,
                   TEMPORAL_ADDRESS=temporal.address, KMS_PROVIDER="local", KMS_LOCAL_KEY=rnd(),
                   TOKEN_HMAC_KEY=rnd(), AUDIT_HMAC_KEY=rnd(), TEMPORAL_CODEC_KEY=rnd(),
                   SCAIKEY_BASE_URL=sk_url, SCAIKEY_CLIENT_SECRET=client_secret, SCAIKEY_AUDIENCE="scaivault",
                   BASE_URL=api_url, LOG_LEVEL="warning", DB_POOL_SIZE=str(args.pool),
                   RATE_LIMIT_OVERRIDES="read_secrets=1000000000,write_secrets=1000000000",
                   PROMETHEUS_MULTIPROC_DIR=str(prom))
        argv = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(api_port), "--workers", str(args.workers), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--no-proxy-headers", "--log-level", "warning"]
        handles.append(svc.start_process("api", argv, env, tmp / "api.log", svc.http_ready(api_url + "/v1/health/ready"),
                                         timeout=90, url=api_url, cwd=REPO_ROOT))
        token = mint_admin_token(sk_url)
        if not token:
            raise SystemExit("could not mint a token from the emulator")
        if not ensure_dev_admin_policy(api_url, token):  # policies deny by default
            raise SystemExit("could not grant the benchmark identity a policy")
        time.sleep(1.0)
        benchmark(api_url, token, connections=args.connections, duration=args.duration, threads=args.threads,
                  write_paths=args.write_paths, warmup=args.warmup, reads_only=args.reads_only)
        print_worker_rss(handles[-1].pid)
        if args.hold:
            print(f"holding the stack for {args.hold}s: api {api_url} token file {tmp / 'token'}", flush=True)
            (tmp / "token").write_text(token)
            time.sleep(args.hold)
    finally:
        svc.stop_all(handles, timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api-url")
    ap.add_argument("--token", default=os.environ.get("SCAIVAULT_TOKEN"))
    ap.add_argument("--spawn", action="store_true", help="start the whole stack on free ports, then benchmark")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured reads first")
    ap.add_argument("--write-paths", type=int, default=1000, help="writes rotate over this many paths")
    ap.add_argument("--workers", type=int, default=2, help="--spawn: uvicorn workers")
    ap.add_argument("--pool", type=int, default=20, help="--spawn: DB_POOL_SIZE per worker")
    ap.add_argument("--reads-only", action="store_true", help="skip the write scenario")
    ap.add_argument("--hold", type=int, default=0, help="--spawn: keep the stack up N seconds after (profiling)")
    ap.add_argument("--pg-fast-unsafe", action="store_true", help="--spawn: PostgreSQL with fsync off")
    args = ap.parse_args(argv)
    if args.spawn:
        spawn_and_run(args)
        return 0
    if not args.api_url or not args.token:
        ap.error("--api-url and --token are required unless --spawn")
    benchmark(args.api_url.rstrip("/"), args.token, connections=args.connections, duration=args.duration,
              threads=args.threads, write_paths=args.write_paths, warmup=args.warmup)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
