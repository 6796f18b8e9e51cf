"""A circuit breaker for a dependency on the request path (one per dependency per process; Redis today).

Closed: calls go through; ``failure_threshold`` consecutive failures (errors or timeouts) open it. Open: callers
are told not to call (``allow()`` is false, :meth:`call` raises :class:`CircuitOpen` at once) and use their
fallback, so a stalled dependency costs the first few requests their timeout and no request after that. While
open, one background task probes the dependency every ``probe_interval`` seconds (the probe has its own
timeout); the first probe that answers closes the breaker. Listeners hear every transition (e.g. the secret
row cache is cleared, the generation bumps that could not be sent are replayed).

Observability: ``snapshot()`` (``/v1/health/detailed``), ``scaivault_circuit_breaker_open{name}`` and
``scaivault_circuit_breaker_calls_total{name,result}`` with result ``success|failure|short_circuited``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import metrics
from core.background import cancel_and_wait

log = logging.getLogger("scaivault.breaker")
_T = TypeVar("_T")
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class CircuitOpen(RedisConnectionError):
    """The breaker is open: the call was not attempted. A ConnectionError, so existing "Redis is down"
    handling applies unchanged."""


class CircuitBreaker:
    def __init__(self, name: str, probe: Callable[[], Awaitable[Any]], *, failure_threshold: int = 3,
                 probe_interval: float = 1.0, probe_timeout: float = 1.0,
                 failures: tuple[type[BaseException], ...] = REDIS_DOWN) -> None:
        self.name = name
        self._probe_fn = probe
        self.failure_threshold = max(1, failure_threshold)
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.failures = failures
        self.opened_at: float | None = None
        self.consecutive_failures = 0
        self.counts = {"success": 0, "failure": 0, "short_circuited": 0}
        self.opened_total = 0
        self.probes_failed = 0
        self.last_error: str | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._probe_task: asyncio.Task[None] | None = None
        self._gauge = metrics.CIRCUIT_BREAKER_OPEN.labels(name)
        self._gauge.set(0)
        self._series = {r: metrics.CIRCUIT_BREAKER_CALLS.labels(name, r) for r in self.counts}

    # --- state ------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        """True when the dependency may be called; false (and counted as short-circuited) while open."""
        if self.opened_at is None:
            return True
        self._count("short_circuited")
        return False

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """``listener(is_open)`` after every transition (called synchronously; must not raise)."""
        self._listeners.append(listener)

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self._count("success")

    def record_failure(self, exc: BaseException | str) -> None:
        self._count("failure")
        self.last_error = exc if isinstance(exc, str) else type(exc).__name__
        self.consecutive_failures += 1
        if self.opened_at is None and self.consecutive_failures >= self.failure_threshold:
            self._open()

    async def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fn`` through the breaker: CircuitOpen at once while open; failures of the configured kinds
        are counted (and re-raised); anything else is the caller's business and does not count."""
        if not self.allow():
            raise CircuitOpen(f"{self.name} circuit is open")
        try:
            result = await fn()
        except self.failures as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result

    # --- transitions ------------------------------------------------------------------------------
    def _open(self) -> None:
        self.opened_at = time.time()
        self.opened_total += 1
        self._gauge.set(1)
        log.warning("circuit breaker opened: serving from the fallback, probing in the background",
                    extra={"breaker": self.name, "error": self.last_error,
                           "consecutive_failures": self.consecutive_failures})
        self._notify(True)
        if self._probe_task is None or self._probe_task.done():
            try:
                self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())
            except RuntimeError:  # no running loop (unit use): the next record_* in a loop starts it
                self._probe_task = None

    def _close(self) -> None:
        down_for = time.time() - (self.opened_at or time.time())
        self.opened_at = None
        self.consecutive_failures = 0
        self._gauge.set(0)
        log.info("circuit breaker closed: dependency answers again",
                 extra={"breaker": self.name, "open_seconds": round(down_for, 1)})
        self._notify(False)

    def _notify(self, is_open: bool) -> None:
        for listener in self._listeners:
            try:
                listener(is_open)
            except Exception:
                log.exception("circuit breaker listener failed", extra={"breaker": self.name})

    async def _probe_loop(self) -> None:
        while self.opened_at is not None:
            await asyncio.sleep(self.probe_interval)
            try:
                await asyncio.wait_for(self._probe_fn(), self.probe_timeout)
            except Exception as exc:
                self.probes_failed += 1
                self.last_error = type(exc).__name__
                continue
            self._close()

    async def stop(self) -> None:
        await cancel_and_wait(self._probe_task)

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        self._series[result].inc()

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": "open" if self.is_open else "closed",
                               "failure_threshold": self.failure_threshold, "opened_total": self.opened_total,
                               "calls": dict(self.counts), "probes_failed": self.probes_failed}
        if self.opened_at is not None:
            out["open_for_seconds"] = int(time.time() - self.opened_at)
            out["last_error"] = self.last_error
        return out


def fast_fail_redis(url: str, timeout: float) -> aioredis.Redis:
    """A Redis client for the request path: ``timeout`` for connect and reads, and no retry of a timeout
    (redis-py retries timeouts 10 times by default, multiplying what a stalled Redis costs a request). One
    immediate retry of a broken connection (a pooled socket from before a Redis restart) is kept."""
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def redis_breaker(settings: Any, client: aioredis.Redis) -> CircuitBreaker:
    """The process's Redis breaker, probing with PING on ``client``."""
    return CircuitBreaker(
        "redis", client.ping, failure_threshold=settings.redis_breaker_failure_threshold,
        probe_interval=settings.redis_breaker_probe_interval_seconds,
        probe_timeout=max(0.1, settings.redis_timeout_seconds),
    )


class GuardedRedis:
    """``client`` with its single-key request-path commands routed through ``breaker``: while the breaker is
    open they raise :class:`CircuitOpen` at once instead of waiting for a stalled Redis; their timeouts and
    connection errors count towards opening it. Everything else (pipelines, pub/sub, ...) is the plain client."""

    GUARDED = frozenset({"get", "mget", "set", "incr", "exists", "hget", "hmget", "publish"})

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self.client = client
        self.breaker = breaker

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if name not in self.GUARDED:
            return attr

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            return await self.breaker.call(lambda: attr(*args, **kwargs))

        return guarded
