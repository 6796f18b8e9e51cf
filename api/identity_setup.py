"""Component set-up for the identity cache: principal enrichment (cached roles/groups, suspended users)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.state import AppState


async def setup_identity(state: AppState) -> Callable[[], Awaitable[None]]:
    import redis.asyncio as aioredis

    from auth.identity_enrichment import IdentityEnricher

    s = state.settings
    pubsub = aioredis.Redis.from_url(s.redis_url, socket_connect_timeout=1, socket_timeout=None)
    enricher = IdentityEnricher(s, state.db, redis=pubsub)
    state.get("authenticator").enrichers.append(enricher)
    state.components["identity_enricher"] = enricher
    enricher.start()

    async def teardown() -> None:
        await enricher.stop()
        await pubsub.aclose()

    return teardown
