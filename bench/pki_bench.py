"""Certificate issuance throughput against a running API: ``POST /v1/pki/issue/{role}`` (server-generated key,
signing, one transaction with its event and audit entry). Prints issuance/s for
RSA 2048 and EC P-256.

    .venv/bin/python bench/pki_bench.py --api-url http://127.0.0.1:8200 --token "$TOKEN" [--duration 10]
        [--concurrency 8] [--tenant tnt_acme_prod]
    .venv/bin/python bench/pki_bench.py --spawn [--duration 10] [--workers 1]

``--spawn`` starts PostgreSQL, Redis, Temporal, the ScaiKey emulator and the API on free loopback ports in a temp
dir (issuing rate limit lifted), benchmarks, and stops them by pid. The token needs ``pki:admin`` and ``pki:issue`` (or ``admin``). The bench creates its own root, intermediate and
two roles (names suffixed with a random tag) in the token's tenant, then issues for ``--duration`` seconds per key
type. The default rate limit for issuing is 50/min per identity (core.md), so run the API with
``RATE_LIMIT_OVERRIDES="pki_issue=1000000"`` (self-hosted override); 429 answers are counted and reported, never
mistaken for issuances. RSA key generation dominates RSA issuance; it runs in the API's worker threads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


@dataclass
class Result:
    ok: int = 0
    limited: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


async def _setup(client: httpx.AsyncClient, prefix: str, tag: str) -> None:
    async def post(path: str, body: dict[str, object]) -> dict[str, object]:
        r = await client.post(prefix + path, json=body)
        if r.status_code not in (200, 201):
            raise SystemExit(f"setup {path} failed: {r.status_code} {r.text}")
        return r.json()  # type: ignore[no-any-return]

    root = await post("/pki/ca", {"name": f"bench-root-{tag}", "common_name": f"Bench Root {tag}",
                                  "ca_type": "root", "key_type": "ec", "key_size": 256})
    inter = await post("/pki/ca", {"name": f"bench-inter-{tag}", "common_name": f"Bench Inter {tag}",
                                   "ca_type": "intermediate", "parent_ca_id": root["id"], "key_type": "ec",
                                   "key_size": 256})
    for kt, bits in (("rsa", 2048), ("ec", 256)):
        await post("/pki/roles", {"name": f"bench-{kt}-{tag}", "ca_id": inter["id"],
                                  "allowed_domains": ["bench.example"], "allow_subdomains": True,
                                  "max_ttl": "24h", "key_type": kt, "key_bits": bits})


async def _run(client: httpx.AsyncClient, url: str, duration: float, concurrency: int) -> Result:
    res = Result()
    deadline = time.perf_counter() + duration

    async def worker(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            t0 = time.perf_counter()
            r = await client.post(url, json={"common_name": f"w{n}-{i}.bench.example", "ttl": "1h"})
            if r.status_code == 200:
                res.ok += 1
                res.latencies.append(time.perf_counter() - t0)
            elif r.status_code == 429:
                res.limited += 1
                await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", "1"))))
            else:
                res.failed += 1

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return res


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] * 1000


async def bench(api_url: str, token: str, *, duration: float, concurrency: int, tenant: str | None) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    prefix = f"/v1/t/{tenant}" if tenant else "/v1"
    tag = secrets.token_hex(4)
    out: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), headers=headers, timeout=60) as client:
        await _setup(client, prefix, tag)
        for kt, label in (("rsa", "RSA 2048"), ("ec", "EC P-256")):
            url = f"{prefix}/pki/issue/bench-{kt}-{tag}"
            t0 = time.perf_counter()
            res = await _run(client, url, duration, concurrency)
            elapsed = time.perf_counter() - t0
            rate = res.ok / elapsed if elapsed else 0.0
            out[label] = rate
            print(f"{label:>9}: {rate:8.1f} issuances/s  ({res.ok} in {elapsed:.1f}s, concurrency {concurrency},"
                  f" p50 {_pct(res.latencies, 0.5):.0f} ms, p99 {_pct(res.latencies, 0.99):.0f} ms,"
                  f" 429s {res.limited}, errors {res.failed})", flush=True)
    return out


def spawn_and_run(args: argparse.Namespace) -> None:
    import base64
    import shutil
    import tempfile

    from devstack import services as svc
    from devstack.admin_token import mint_admin_token

    tmp = Path(tempfile.mkdtemp(prefix="scaivault-pki-bench-"))
    handles: list[svc.Handle] = []

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
                   RATE_LIMIT_OVERRIDES="pki_issue=1000000000,pki_admin=1000000")
        argv = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(api_port), "--workers", str(args.workers), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--no-proxy-headers", "--log-level", "warning"]
        handles.append(svc.start_process("api", argv, env, tmp / "api.log",
                                         svc.http_ready(api_url + "/v1/health/ready"), timeout=90, url=api_url,
                                         cwd=REPO_ROOT))
        token = mint_admin_token(sk_url)
        if not token:
            raise SystemExit("could not mint a token from the emulator")
        asyncio.run(bench(api_url, token, duration=args.duration, concurrency=args.concurrency, tenant=None))
    finally:
        svc.stop_all(handles, timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api-url")
    ap.add_argument("--spawn", action="store_true", help="start the whole stack on free ports, then benchmark")
    ap.add_argument("--workers", type=int, default=1, help="API worker processes (--spawn)")
    ap.add_argument("--token", default=os.environ.get("SCAIVAULT_TOKEN"))
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per key type")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--tenant", help="address this tenant through /v1/t/{tenant} (partner admins)")
    args = ap.parse_args(argv)
    if args.spawn:
        spawn_and_run(args)
        return 0
    if not args.api_url:
        ap.error("--api-url (or --spawn) is required")
    if not args.token:
        ap.error("--token (or SCAIVAULT_TOKEN) is required")
    asyncio.run(bench(args.api_url, args.token, duration=args.duration, concurrency=args.concurrency,
                      tenant=args.tenant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
