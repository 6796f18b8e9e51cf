"""Liveness, readiness, detailed health, version and Prometheus metrics (spec core.md §10.8).

``/v1/health``, ``/v1/health/ready``, ``/v1/version`` and ``/v1/metrics`` take no token and are rate-limited per
client address (``HEALTH_RATE_LIMIT_PER_MINUTE``, in-process buckets: they must answer without Redis);
``/v1/health/detailed`` needs scope ``admin``. The checks themselves are in services/health.py.
"""

from __future__ import annotations

import ipaddress
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.context import RequestContext
from api.deps import app_state, authorized, client_ip
from api.responses import JSON
from core import metrics
from core.errors import AppError
from ratelimit.limiter import LocalBuckets
from services import health as checks
from services import job_metrics
from services.dynamic import metrics as dynamic_metrics
from services.pki import metrics as pki_metrics
from services.rotation import metrics as rotation_metrics

_PUBLIC_CATEGORY = "public_health"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _address_key(address: str) -> str:
    """IPv6 clients share a bucket per /64 (one host usually holds a whole /64), IPv4 clients per address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def public_rate_limit(request: Request) -> None:
    """Charge the client address's bucket for a public endpoint; 429 ``rate_limited`` when it is empty."""
    state = app_state(request)
    limit = state.settings.health_rate_limit_per_minute
    if limit <= 0:
        return
    buckets = state.components.get("public_buckets")
    if buckets is None:
        buckets = state.components["public_buckets"] = LocalBuckets(max_keys=50_000)
    rate = limit / 60.0
    allowed, tokens = buckets.take(_address_key(client_ip(request, state) or "-"), limit, rate, 1)
    if not allowed:
        retry_after = max(1, math.ceil((1 - tokens) / rate))
        metrics.RATE_LIMIT_HITS.labels(_PUBLIC_CATEGORY).inc()
        raise AppError("rate_limited", f"rate limit for '{_PUBLIC_CATEGORY}' exceeded; retry after {retry_after}s",
                       {"category": _PUBLIC_CATEGORY, "limit": limit, "retry_after": retry_after},
                       headers={"Retry-After": str(retry_after)})


Public = Depends(public_rate_limit)
Admin = Annotated[RequestContext, Depends(authorized("admin", "admin_operations"))]
router = APIRouter(tags=["system"])
_LIMITED: dict[int | str, dict[str, Any]] = {429: {
    "description": "Too many requests from this address (`rate_limited`, see `Retry-After`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}}


@router.get("/v1/health", summary="Liveness: 200 while the process runs", responses=_LIMITED, dependencies=[Public],
            description="No dependency checks (load-balancer liveness). No token; rate-limited per client address.")
async def health() -> JSON:
    return JSON({"status": "healthy", "timestamp": _now()})


@router.get("/v1/health/ready", summary="Readiness: 200, or 503 naming each dependency that is not ready",
            dependencies=[Public],
            responses={**_LIMITED, 503: {"description": "Not ready: `checks` names each dependency that failed and "
                                                         "`errors` says why"}},
            description="Checks `database`, `redis` and `encryption` (KMS reachable, root key usable), plus checks "
                        "components register (e.g. `rate_limiter`). Temporal is not a readiness check (reads and "
                        "writes work without it; see `/v1/health/detailed`). One check runs at a time per process "
                        "and its result is shared for `HEALTH_CACHE_SECONDS` (1 s). No token; rate-limited per "
                        "client address.")
async def ready(request: Request) -> JSON:
    state = app_state(request)
    cache = state.components.get("readiness_cache")
    if cache is None or cache.ttl != state.settings.health_cache_seconds:
        cache = state.components["readiness_cache"] = checks.SharedResult(state.settings.health_cache_seconds)
    results: dict[str, dict[str, Any]] = await cache.get(lambda: checks.readiness(state))
    errors = {k: v.get("error", "error") for k, v in results.items() if v["status"] == "error"}
    body: dict[str, Any] = {"status": "not_ready" if errors else "ready",
                            "checks": {k: v["status"] for k, v in results.items()}}
    if errors:
        body["errors"] = errors
    return JSON(body, status_code=503 if errors else 200)


@router.get("/v1/health/detailed", summary="Each dependency's status and latency, pool, KMS key and version",
                  description="Scope `admin`. `checks`: `database` (`pool_size`, `pool_available`, `pool_in_use`), "
                              "`redis` (`memory_used_mb`), `encryption` (`provider`, `key_id`, `key_status` "
                              "`active`/`rotation_pending`, `last_rotation`), `temporal` (reported, does not "
                              "affect readiness) and component checks, each with `status` and `latency_ms`. "
                              "`status` is `unhealthy` when the database fails, `degraded` when anything else is "
                              "not `ok`. Never cached.")
async def detailed(ctx: Admin, request: Request) -> JSON:
    ctx.describe("health_detailed", resource_type="system")
    state = app_state(request)
    results = await checks.run_checks(state, detailed=True)
    degraded = [k for k, v in results.items() if v["status"] != "ok"]
    status = "healthy" if not degraded else ("unhealthy" if "database" in degraded else "degraded")
    return JSON({
        "status": status,
        "version": state.settings.version,
        "uptime_seconds": int(time.time() - state.started_at),
        "checks": results,
    })


@router.get("/v1/version", summary="Version information", responses=_LIMITED, dependencies=[Public])
async def version(request: Request) -> JSON:
    s = app_state(request).settings
    return JSON({"version": s.version, "api_version": "v1", "env": s.env})


@router.get("/metrics", include_in_schema=False, dependencies=[Public])
@router.get("/v1/metrics", summary="Prometheus metrics", responses=_LIMITED, dependencies=[Public])
async def prometheus(request: Request) -> Response:
    state = app_state(request)
    stats = state.db.pool_stats()
    metrics.DB_POOL_SIZE.set(stats["pool_size"])
    metrics.DB_POOL_AVAILABLE.set(stats["pool_available"])
    await pki_metrics.refresh(state.db)
    await rotation_metrics.refresh(state.db)
    await dynamic_metrics.refresh(state.db)
    await job_metrics.refresh(state.db, state.redis)  # queue depths, DB/Redis probes (services/job_metrics.py)
    body, ctype = metrics.render()
    return Response(body, media_type=ctype)
