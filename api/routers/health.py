"""Liveness, readiness, detailed health, version and Prometheus metrics. None of these need auth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import app_state
from api.responses import JSON
from api.state import AppState
from core import metrics

router = APIRouter(tags=["system"])
CHECK_TIMEOUT = 2.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _timed(fn: Callable[[], Awaitable[dict[str, Any] | None]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        extra = await asyncio.wait_for(fn(), CHECK_TIMEOUT)
        out: dict[str, Any] = {"status": "ok", "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}
        if extra:
            out.update(extra)
        return out
    except TimeoutError:
        return {"status": "error", "error": f"timed out after {CHECK_TIMEOUT}s",
                "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}
    except Exception as exc:  # a dependency check must report, not raise
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return {"status": "error", "error": msg, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}


async def run_checks(state: AppState, detailed: bool) -> dict[str, dict[str, Any]]:
    async def postgres() -> dict[str, Any] | None:
        await state.db.ping()
        return state.db.pool_stats() if detailed else None

    async def redis() -> dict[str, Any] | None:
        await state.redis.ping()
        if detailed:
            info = await state.redis.info("memory")
            return {"memory_used_mb": round(int(info.get("used_memory", 0)) / 1048576, 1)}
        return None

    async def temporal() -> dict[str, Any] | None:
        if state.temporal is None:
            raise RuntimeError("client not configured")
        ok = await state.temporal.service_client.check_health(timeout=__import__("datetime").timedelta(seconds=2))
        if not ok:
            raise RuntimeError("not serving")
        return {"namespace": state.settings.temporal_namespace} if detailed else None

    async def kms() -> dict[str, Any] | None:
        provider = state.components.get("kms")
        if provider is None:
            raise RuntimeError("no KMS provider configured")
        await provider.health()
        return {"provider": provider.name} if detailed else None

    names = ["postgres", "redis", "temporal", "kms"]
    results = await asyncio.gather(*(_timed(f) for f in (postgres, redis, temporal, kms)))
    checks = dict(zip(names, results, strict=True))
    for name, extra in state.components.get("health_extras", {}).items():
        checks[name] = await _timed(extra)
    return checks


@router.get("/v1/health", summary="Liveness: 200 while the process runs")
async def health() -> JSON:
    return JSON({"status": "healthy", "timestamp": _now()})


@router.get("/v1/health/ready", summary="Readiness: 200, or 503 naming each dependency that is not ready")
async def ready(request: Request) -> JSON:
    checks = await run_checks(app_state(request), detailed=False)
    errors = {k: v.get("error", "error") for k, v in checks.items() if v["status"] == "error"}
    body: dict[str, Any] = {"status": "not_ready" if errors else "ready",
                            "checks": {k: v["status"] for k, v in checks.items()}}
    if errors:
        body["errors"] = errors
    return JSON(body, status_code=503 if errors else 200)


@router.get("/v1/health/detailed", summary="Each dependency's status and latency, pool usage and version")
async def detailed(request: Request) -> JSON:
    state = app_state(request)
    checks = await run_checks(state, detailed=True)
    degraded = [k for k, v in checks.items() if v["status"] != "ok"]
    status = "healthy" if not degraded else ("unhealthy" if "postgres" in degraded else "degraded")
    return JSON({
        "status": status,
        "version": state.settings.version,
        "uptime_seconds": int(time.time() - state.started_at),
        "checks": checks,
    })


@router.get("/v1/version", summary="Version information")
async def version(request: Request) -> JSON:
    s = app_state(request).settings
    return JSON({"version": s.version, "api_version": "v1", "env": s.env})


@router.get("/metrics", include_in_schema=False)
@router.get("/v1/metrics", summary="Prometheus metrics")
async def prometheus(request: Request) -> Response:
    state = app_state(request)
    stats = state.db.pool_stats()
    metrics.DB_POOL_SIZE.set(stats["pool_size"])
    metrics.DB_POOL_AVAILABLE.set(stats["pool_available"])
    body, ctype = metrics.render()
    return Response(body, media_type=ctype)
