"""Component set-up for access policies: replaces the AllowAll placeholder with the real checker (default deny)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.state import AppState


async def setup_policies(state: AppState) -> Callable[[], Awaitable[None]]:
    """``state.components["access"]``: a :class:`services.policy_access.PolicyAccessChecker`.

    It listens for invalidation broadcasts on its own Redis connection (no read timeout, as pub/sub needs).
    """
    import redis.asyncio as aioredis

    from services.events.violations import ViolationReporter
    from services.policy_access import PolicyAccessChecker

    s = state.settings
    pubsub_redis = aioredis.Redis.from_url(s.redis_url, socket_connect_timeout=1, socket_timeout=None)
    # Version checks go through the process's Redis circuit breaker (ratelimit/setup.py): while it is open they
    # fail at once and the index is trusted for the fallback TTL, as when Redis is down.
    redis = state.components.get("redis_guarded", state.redis)
    checker = PolicyAccessChecker(
        state.db, redis, pubsub_redis=pubsub_redis,
        recheck_seconds=s.policy_cache_recheck_seconds,
        fallback_ttl_seconds=s.policy_cache_fallback_ttl_seconds,
        max_age_seconds=s.policy_cache_max_age_seconds,
        violations=ViolationReporter(state.db, tenant_cap=s.policy_violation_events_per_minute),
    )
    state.components["access"] = checker
    checker.start()

    async def teardown() -> None:
        await checker.stop()
        await pubsub_redis.aclose()

    return teardown
