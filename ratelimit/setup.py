"""API component set-up (api/app.py COMPONENTS "ratelimit.setup:setup"): ``state.components["redis_breaker"]``
(the process's circuit breaker for request-path Redis calls, core/breaker.py), ``"rate_limiter"`` (charged by
api/deps.authorized), ``"rate_limits"`` (the limit table) and their health checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api.state import AppState
from core.breaker import GuardedRedis, fast_fail_redis, redis_breaker
from ratelimit.limiter import RateLimiter
from ratelimit.limits import LimitTable


async def setup(state: AppState) -> Callable[[], Awaitable[None]] | None:
    s = state.settings
    table = LimitTable(state.db, s.rate_limit_overrides, s.rate_limit_tenant_cache_seconds,
                       ceiling=s.rate_limit_tenant_ceiling)
    state.components["rate_limits"] = table
    # Its own client: a short timeout and no retry of a timeout, so a hung Redis costs a request at most that
    # long before the fallback, and only until the breaker opens.
    redis = fast_fail_redis(s.redis_url, s.redis_timeout_seconds)
    breaker = redis_breaker(s, redis)
    state.components["redis_breaker"] = breaker
    # For the other request-path Redis calls (policy version checks, secrets generation bumps).
    state.components["redis_guarded"] = GuardedRedis(redis, breaker)
    extras = state.components.setdefault("health_extras", {})

    async def breaker_health() -> dict[str, Any]:
        snap = breaker.snapshot()
        return {"status": "degraded", **snap} if breaker.is_open else snap

    extras["redis_breaker"] = breaker_health
    limiter: RateLimiter | None = None
    if s.rate_limit_enabled:
        limiter = RateLimiter(redis, table.limit, breaker=breaker)
        await limiter.start()
        state.components["rate_limiter"] = limiter
        extras["rate_limiter"] = limiter.health

    async def teardown() -> None:
        if limiter is not None:
            await limiter.stop()
        await breaker.stop()
        await redis.aclose()

    return teardown
