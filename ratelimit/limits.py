"""Effective limits: spec defaults, then RATE_LIMIT_OVERRIDES, then the tenant's own overrides (cached)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ratelimit.categories import DEFAULT_LIMITS, UNKNOWN_CATEGORY_LIMIT, parse_overrides
from repositories import rate_limits as repo

log = logging.getLogger("scaivault.ratelimit")
_ERROR_CACHE_SECONDS = 5.0


class LimitTable:
    def __init__(self, db: Any, env_overrides: str, cache_seconds: float) -> None:
        self._db = db
        self.base = {**DEFAULT_LIMITS, **parse_overrides(env_overrides)}
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}
        self._loading: dict[str, asyncio.Future[dict[str, int]]] = {}

    async def limit(self, tenant_id: str, category: str) -> int:
        overrides = await self.tenant_overrides(tenant_id)
        return overrides.get(category) or self.base.get(category, UNKNOWN_CATEGORY_LIMIT)

    async def tenant_overrides(self, tenant_id: str) -> dict[str, int]:
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._loading.get(tenant_id)
        if pending is not None:  # single flight: one load per tenant at a time
            return await asyncio.shield(pending)
        fut: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = fut
        try:
            try:
                async with self._db.raw() as conn:
                    value = await repo.rate_limit_overrides(conn, tenant_id)
                ttl = self._ttl
            except Exception as exc:  # the limiter must not fail requests because the DB hiccuped
                log.warning("could not load tenant rate limits", extra={"tenant_id": tenant_id,
                                                                       "error": type(exc).__name__})
                value, ttl = (hit[1] if hit else {}), _ERROR_CACHE_SECONDS
            self._cache[tenant_id] = (time.monotonic() + ttl, value)
            fut.set_result(value)
            return value
        finally:
            self._loading.pop(tenant_id, None)

    async def set_overrides(self, ctx: Any, changes: dict[str, int | None], audit: Any) -> None:
        """Store the tenant's overrides (None clears one) with their audit entry in one transaction."""
        async with self._db.raw() as conn, conn.transaction():
            for category, limit in sorted(changes.items()):
                await repo.set_rate_limit(conn, ctx.tenant_id, category, limit, ctx.principal.identity_id)
            await audit.record(ctx, extra={"limits": changes}, conn=conn)
        self.invalidate(ctx.tenant_id)

    def invalidate(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)

    async def effective(self, tenant_id: str) -> dict[str, int]:
        overrides = await self.tenant_overrides(tenant_id)
        return {c: overrides.get(c, v) for c, v in self.base.items()}
