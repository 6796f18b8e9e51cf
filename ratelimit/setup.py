"""API component set-up (api/app.py COMPONENTS "ratelimit.setup:setup"): ``state.components["rate_limiter"]``
(charged by api/deps.authorized), ``"rate_limits"`` (the limit table) and the health check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from api.state import AppState
from ratelimit.limiter import RateLimiter
from ratelimit.limits import LimitTable


async def setup(state: AppState) -> Callable[[], Awaitable[None]] | None:
    s = state.settings
    table = LimitTable(state.db, s.rate_limit_overrides, s.rate_limit_tenant_cache_seconds)
    state.components["rate_limits"] = table
    if not s.rate_limit_enabled:
        return None
    # Its own client: a short timeout so a hung Redis costs a request at most that long before the fallback.
    redis = aioredis.Redis.from_url(s.redis_url, socket_timeout=s.redis_timeout_seconds,
                                    socket_connect_timeout=s.redis_timeout_seconds, retry_on_timeout=False)
    limiter = RateLimiter(redis, table.limit)
    await limiter.start()
    state.components["rate_limiter"] = limiter
    state.components.setdefault("health_extras", {})["rate_limiter"] = limiter.health

    async def teardown() -> None:
        await limiter.stop()
        await redis.aclose()

    return teardown
