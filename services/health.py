"""Dependency checks behind ``/v1/health/ready`` and ``/v1/health/detailed`` (spec core.md §10.8).

Readiness (a load balancer's question, "may I send this process traffic?") checks ``database`` (PostgreSQL
answers on the pool), ``redis`` and ``encryption`` (the KMS root key wraps and unwraps), plus every check a
component registers in ``state.components["health_extras"]`` (name -> ``async () -> dict | None``; raising, or
returning ``{"status": "error", ...}``, makes the process unready; ``{"status": "degraded"}`` does not).
Temporal is *not* a readiness check: reads and writes keep working without it (the outbox holds events), so a
Temporal outage must not make load balancers drop every API process. ``/detailed`` reports it, with the pool
(``pool_size``, ``pool_available``, ``pool_in_use``), Redis memory, each check's latency, and the KMS provider,
root key id, ``key_status`` and ``last_rotation``.

:class:`SharedResult` runs one readiness pass at a time per process and shares its result for
``HEALTH_CACHE_SECONDS``, so anonymous probes cannot make every request ping PostgreSQL, Redis and the KMS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from api.state import AppState
from repositories.keys import root_wrapping_status

CHECK_TIMEOUT = 2.0
READINESS = ("database", "redis", "encryption")
Check = Callable[[], Awaitable[dict[str, Any] | None]]


async def timed(fn: Check) -> dict[str, Any]:
    """Run one check: ``{"status": "ok"|"error"|..., "latency_ms", ...extra}``; never raises."""
    t0 = time.perf_counter()

    def ms() -> float:
        return round((time.perf_counter() - t0) * 1000, 2)

    try:
        extra = await asyncio.wait_for(fn(), CHECK_TIMEOUT)
        out: dict[str, Any] = {"status": "ok", "latency_ms": ms()}
        if extra:
            out.update(extra)
        return out
    except TimeoutError:
        return {"status": "error", "error": f"timed out after {CHECK_TIMEOUT}s", "latency_ms": ms()}
    except Exception as exc:  # a dependency check must report, not raise
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return {"status": "error", "error": msg, "latency_ms": ms()}


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value is not None else None


async def run_checks(state: AppState, *, detailed: bool) -> dict[str, dict[str, Any]]:
    """The readiness checks (and, when ``detailed``, Temporal and the extra detail fields)."""

    async def database() -> dict[str, Any] | None:
        await state.db.ping()
        return state.db.pool_stats() if detailed else None

    async def redis() -> dict[str, Any] | None:
        await state.redis.ping()
        if detailed:
            info = await state.redis.info("memory")
            return {"memory_used_mb": round(int(info.get("used_memory", 0)) / 1048576, 1)}
        return None

    async def encryption() -> dict[str, Any] | None:
        provider = state.components.get("kms")
        if provider is None:
            raise RuntimeError("no KMS provider configured")
        await provider.health()  # KMS reachable and the root key usable (local: a wrap/unwrap round trip)
        if not detailed:
            return None
        async with state.db.raw() as conn:
            wrapping = await root_wrapping_status(conn, provider.key_id)
        return {"provider": provider.name, "key_id": provider.key_id,
                # rotation_pending: some partner keys are still wrapped under an earlier root key
                # (run `scaivault kms rotate`); both old and new root keys must stay configured meanwhile.
                "key_status": "rotation_pending" if wrapping["stale"] else "active",
                "last_rotation": _iso(wrapping["last_rotation"]),
                "partner_keys": wrapping["partner_keys"], "partner_keys_on_previous_root": wrapping["stale"]}

    async def temporal() -> dict[str, Any] | None:
        if state.temporal is None:
            raise RuntimeError("client not configured")
        ok = await state.temporal.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT))
        if not ok:
            raise RuntimeError("not serving")
        return {"namespace": state.settings.temporal_namespace, "affects_readiness": False}

    checks: dict[str, Check] = {"database": database, "redis": redis, "encryption": encryption}
    if detailed:
        checks["temporal"] = temporal
    checks.update(state.components.get("health_extras", {}))
    results = await asyncio.gather(*(timed(f) for f in checks.values()))
    return dict(zip(checks, results, strict=True))


async def readiness(state: AppState) -> dict[str, dict[str, Any]]:
    return await run_checks(state, detailed=False)


class SharedResult:
    """At most one computation in flight; its result is reused for ``ttl`` seconds after it finished.

    The computation runs as its own task, so a caller that goes away (client disconnect) cancels neither it nor
    the other callers waiting on it.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._value: Any = None
        self._expires = 0.0
        self._task: asyncio.Task[Any] | None = None
        self.computations = 0  # how many times the work actually ran (tests, metrics)

    async def get(self, compute: Callable[[], Awaitable[Any]]) -> Any:
        if self._value is not None and time.monotonic() < self._expires:
            return self._value
        if self._task is None:
            self.computations += 1
            self._task = asyncio.ensure_future(compute())
            self._task.add_done_callback(self._done)
        return await asyncio.shield(self._task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is None:
            self._value, self._expires = task.result(), time.monotonic() + self.ttl
