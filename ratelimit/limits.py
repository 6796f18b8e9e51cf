"""Effective limits: spec defaults, then RATE_LIMIT_OVERRIDES, then the tenant's own overrides (cached).

A tenant override never exceeds the platform ceiling (``RATE_LIMIT_TENANT_CEILING``, or the category's default
when that is higher): values above it are refused when set and clamped when read (rows stored before the
ceiling existed). Raising a category above its default needs ``may_raise`` (a super admin, or the partner
admin of the tenant's partner); a tenant admin may lower limits, clear overrides and keep what was granted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from core.errors import AppError
from ratelimit.categories import DEFAULT_LIMITS, UNKNOWN_CATEGORY_LIMIT, parse_overrides
from repositories import rate_limits as repo

log = logging.getLogger("scaivault.ratelimit")
_ERROR_CACHE_SECONDS = 5.0


class LimitTable:
    def __init__(self, db: Any, env_overrides: str, cache_seconds: float, ceiling: int = 2**31 - 1) -> None:
        self._db = db
        self.base = {**DEFAULT_LIMITS, **parse_overrides(env_overrides)}
        self._ceiling = ceiling
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}
        self._loading: dict[str, asyncio.Future[dict[str, int]]] = {}

    def ceiling(self, category: str) -> int:
        """The highest override ``category`` may hold."""
        return max(self._ceiling, self.base.get(category, UNKNOWN_CATEGORY_LIMIT))

    async def limit(self, tenant_id: str, category: str) -> int:
        overrides = await self.tenant_overrides(tenant_id)
        override = overrides.get(category)
        if override:
            return min(override, self.ceiling(category))
        return self.base.get(category, UNKNOWN_CATEGORY_LIMIT)

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

    async def set_overrides(self, ctx: Any, changes: dict[str, int | None], audit: Any, *,
                            may_raise: bool = False) -> None:
        """Store the tenant's overrides (None clears one) with their audit entry in one transaction.

        Values must already be within ``ceiling``. Without ``may_raise``, a value above both the category's
        default and the tenant's current override is refused (403 forbidden; nothing is stored).
        """
        async with self._db.raw() as conn, conn.transaction():
            if not may_raise:
                current = await repo.rate_limit_overrides(conn, ctx.tenant_id, lock=True)
                raised = sorted(c for c, v in changes.items()
                                if v is not None and v > max(self.base.get(c, UNKNOWN_CATEGORY_LIMIT), current.get(c, 0)))
                if raised:
                    raise AppError("forbidden", "only a super admin or the tenant's partner admin may raise a rate "
                                   "limit above the platform default", {
                                       "categories": raised,
                                       "defaults": {c: self.base.get(c, UNKNOWN_CATEGORY_LIMIT) for c in raised}})
            for category, limit in sorted(changes.items()):
                await repo.set_rate_limit(conn, ctx.tenant_id, category, limit, ctx.principal.identity_id)
            await audit.record(ctx, extra={"limits": changes}, conn=conn)
        self.invalidate(ctx.tenant_id)

    def invalidate(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)

    async def effective(self, tenant_id: str) -> dict[str, int]:
        overrides = await self.tenant_overrides(tenant_id)
        return {c: min(overrides[c], self.ceiling(c)) if c in overrides else v for c, v in self.base.items()}
