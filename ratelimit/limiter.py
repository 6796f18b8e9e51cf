"""Token buckets per (identity, category) in Redis, with auto-pipelining and an in-memory fallback.

One Lua script (loaded once, called with EVALSHA) refills and takes tokens atomically using Redis' clock.
Concurrent ``charge`` calls are queued and sent by one flusher as a single pipeline (one round trip for
however many requests arrived meanwhile). A failed or timed-out round trip is served from local buckets with
the same limits (per process, so the effective limit is multiplied by the number of processes) and counted by
the process's Redis circuit breaker (core/breaker.py); once it opens, every charge uses the local buckets
without touching Redis (a stalled Redis costs no request its timeout) until a background probe finds Redis
answering. ``/v1/health/detailed`` shows ``rate_limiter: degraded`` while the breaker is open.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.context import RequestContext
from core import metrics
from core.breaker import CircuitBreaker
from core.errors import AppError
from ratelimit.categories import DEFAULT_LIMITS, UNKNOWN_CATEGORY_LIMIT, canonical

log = logging.getLogger("scaivault.ratelimit")

# KEYS[1] bucket, optional KEYS[2] a generation counter to read in the same round trip (see ``watch``);
# ARGV: capacity, refill tokens/second, cost. Returns {allowed, tokens_left, generation or ''}.
TOKEN_BUCKET_LUA = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = tokens + (now - ts) * rate
  ts = now
end
if tokens > cap then tokens = cap end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', string.format('%.6f', ts))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 1)
local gen = ''
if #KEYS > 1 then gen = redis.call('GET', KEYS[2]) or '' end
return {allowed, string.format('%.6f', tokens), gen}
"""

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
LimitLookup = Callable[[str, str], Awaitable[int]]


class RedisDown(Exception):
    pass


class LocalBuckets:
    """The same bucket math in process memory (the fallback while Redis is down)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max = max_keys

    def take(self, key: str, cap: int, rate: float, cost: int) -> tuple[bool, float]:
        now = time.monotonic()
        tokens, ts = self._buckets.pop(key, (float(cap), now))
        tokens = min(float(cap), tokens + max(0.0, now - ts) * rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return allowed, tokens


class Pipeliner:
    """Auto-pipelining: calls queued while a round trip is in flight go together in the next one."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._sha: str | None = None
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[tuple[bool, float, str | None]]]] = []
        self._flushing = False

    async def load(self) -> None:
        self._sha = await self._redis.script_load(TOKEN_BUCKET_LUA)

    async def take(self, key: str, cap: int, rate: float, cost: int,
                   gen_key: str | None = None) -> tuple[bool, float, str | None]:
        fut: asyncio.Future[tuple[bool, float, str | None]] = asyncio.get_running_loop().create_future()
        self._queue.append(((key, cap, repr(rate), cost, gen_key), fut))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)
        finally:
            self._flushing = False

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[tuple[bool, float, str | None]]]]) -> None:
        try:
            results = await self._execute([args for args, _ in batch])
            if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted or flushed scripts
                await self.load()
                results = await self._execute([args for args, _ in batch])
        except (*_REDIS_DOWN, RedisError) as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(RedisDown(type(exc).__name__))
            return
        for (_, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(RedisDown(type(res).__name__))
            else:
                gen = res[2] if len(res) > 2 else None
                fut.set_result((bool(int(res[0])), float(res[1]),
                                (gen.decode() if isinstance(gen, bytes) else gen) if gen is not None else None))

    async def _execute(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        if self._sha is None:
            await self.load()
        pipe = self._redis.pipeline(transaction=False)
        for key, cap, rate, cost, gen_key in calls:
            if gen_key is None:
                pipe.execute_command("EVALSHA", self._sha, 1, key, cap, rate, cost)
            else:
                pipe.execute_command("EVALSHA", self._sha, 2, key, gen_key, cap, rate, cost)
        return list(await pipe.execute(raise_on_error=False))


class RateLimiter:
    """``await charge(ctx, category, n)``: take ``n`` tokens or raise 429 rate_limited."""

    def __init__(self, redis: aioredis.Redis, limits: LimitLookup, *, breaker: CircuitBreaker | None = None,
                 probe_interval: float = 1.0) -> None:
        self._pipeliner = Pipeliner(redis)
        self._redis = redis
        self._limits = limits
        self._local = LocalBuckets()
        # Shared with the other request-path Redis calls of the process (ratelimit/setup.py); its own otherwise.
        self._own_breaker = breaker is None
        self.breaker = breaker or CircuitBreaker("rate_limiter", redis.ping, failure_threshold=1,
                                                 probe_interval=probe_interval)
        self._warned: set[str] = set()
        self._watches: dict[str, tuple[Callable[[RequestContext], str | None], str]] = {}

    def watch(self, category: str, key_for: Callable[[RequestContext], str | None], extra_name: str) -> None:
        """Read a Redis counter in the same round trip as every ``category`` charge and store its value in
        ``ctx.internal[extra_name]`` ("0" when unset; never audited). Nothing is stored while Redis is down, so consumers (the
        secret-row cache) must treat a missing value as "unknown"."""
        self._watches[canonical(category)] = (key_for, extra_name)

    async def start(self) -> None:
        if not self.breaker.allow():
            return
        try:
            await self._pipeliner.load()
        except (*_REDIS_DOWN, RedisError) as exc:
            self.breaker.record_failure(exc)
            log.warning("rate limiter: Redis unavailable at start, using per-process buckets",
                        extra={"error": type(exc).__name__})

    async def stop(self) -> None:
        if self._own_breaker:
            await self.breaker.stop()

    @property
    def degraded(self) -> bool:
        return self.breaker.is_open

    @property
    def degraded_since(self) -> float | None:
        return self.breaker.opened_at

    async def charge(self, ctx: RequestContext, category: str, n: int = 1) -> None:
        if n <= 0:
            return
        cat = canonical(category)
        if cat not in DEFAULT_LIMITS and cat not in self._warned:
            self._warned.add(cat)
            log.warning("unknown rate-limit category; using the default limit",
                        extra={"category": cat, "limit": UNKNOWN_CATEGORY_LIMIT})
        limit = await self._limits(ctx.tenant_id, cat)
        rate = limit / 60.0
        p = ctx.principal
        key = f"rl:{p.tenant_id or '-'}:{p.identity_id}:{cat}"
        watch = self._watches.get(cat)
        gen_key = watch[0](ctx) if watch is not None else None
        allowed, tokens, gen = await self._take(key, limit, rate, n, gen_key)
        if watch is not None and gen is not None:
            ctx.internal[watch[1]] = gen or "0"  # not ctx.extra: that one goes into the audit entry
        now = time.time()
        if ctx.category is None or canonical(ctx.category) == cat:
            reset = math.ceil(now + (limit - tokens) / rate)
            _set_headers(ctx, limit, max(0, math.floor(tokens)), reset)
        if not allowed:
            retry_after = max(1, math.ceil((n - tokens) / rate))
            metrics.RATE_LIMIT_HITS.labels(cat).inc()
            raise AppError("rate_limited", f"rate limit for '{cat}' exceeded; retry after {retry_after}s",
                           {"category": cat, "limit": limit, "retry_after": retry_after},
                           headers={"Retry-After": str(retry_after)})

    async def _take(self, key: str, cap: int, rate: float, cost: int,
                    gen_key: str | None = None) -> tuple[bool, float, str | None]:
        if self.breaker.allow():
            try:
                result = await self._pipeliner.take(key, cap, rate, cost, gen_key)
            except RedisDown as exc:
                self.breaker.record_failure(str(exc))
            else:
                self.breaker.record_success()
                return result
        # Local buckets; no generation (the secret-row cache is bypassed while it is unknown).
        allowed, tokens = self._local.take(key, cap, rate, cost)
        return allowed, tokens, None

    async def health(self) -> dict[str, Any]:
        opened_at = self.breaker.opened_at
        if opened_at is not None:
            return {"status": "degraded", "mode": "in_memory_fallback",
                    "degraded_for_seconds": int(time.time() - opened_at)}
        return {"mode": "redis"}


_HEADER_NAMES = (b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset")


def _set_headers(ctx: RequestContext, limit: int, remaining: int, reset: int) -> None:
    headers = ctx.response_headers
    headers[:] = [h for h in headers if h[0] not in _HEADER_NAMES]
    headers.extend([(b"x-ratelimit-limit", str(limit).encode()), (b"x-ratelimit-remaining", str(remaining).encode()),
                    (b"x-ratelimit-reset", str(reset).encode())])
