"""Rate-limiter throughput: charges/s with 64 concurrent callers, auto-pipelined vs one EVALSHA per call.

    .venv/bin/python bench/ratelimit_bench.py [--callers 64] [--seconds 3]

Starts a private redis-server on a free port (stopped by pid afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis

from api.context import RequestContext
from auth.principal import Principal
from ratelimit.limiter import TOKEN_BUCKET_LUA, RateLimiter


def _ctx(i: int) -> RequestContext:
    p = Principal(identity_id=f"sa:bench{i}", identity_type="service_account", subject="x", tenant_id="tnt_b",
                  partner_id=None, scopes=frozenset())
    return RequestContext(principal=p, tenant_id="tnt_b", partner_id=None, request_id="r", source_ip=None,
                          user_agent=None, scope=None, category="read_secrets")


async def _loop(callers: int, seconds: float, fn) -> int:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + seconds
    count = 0

    async def caller(i: int) -> None:
        nonlocal count
        ctx = _ctx(i)
        while time.perf_counter() < deadline:
            await fn(ctx)
            count += 1

    await asyncio.gather(*(caller(i) for i in range(callers)))
    return count


async def bench(url: str, callers: int, seconds: float) -> None:
    redis = aioredis.Redis.from_url(url)

    async def limits(tenant: str, category: str) -> int:
        return 10_000_000

    limiter = RateLimiter(redis, limits)
    await limiter.start()
    n = await _loop(callers, seconds, lambda ctx: limiter.charge(ctx, "read_secrets", 1))
    print(f"auto-pipelined charge   {n / seconds:>9.0f} charges/s ({callers} callers)")
    sha = await redis.script_load(TOKEN_BUCKET_LUA)

    async def one(ctx: RequestContext) -> None:
        await redis.evalsha(sha, 1, f"rl:x:{ctx.principal.identity_id}", 10_000_000, 1000.0, 1)

    n = await _loop(callers, seconds, one)
    print(f"one EVALSHA per call    {n / seconds:>9.0f} charges/s ({callers} callers)")
    await limiter.stop()
    await redis.aclose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--callers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    from devstack import services as svc

    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        handle = svc.start_redis(Path(tmp), svc.free_port())
        try:
            asyncio.run(bench(handle.url, args.callers, args.seconds))
        finally:
            handle.stop()


if __name__ == "__main__":
    main()
