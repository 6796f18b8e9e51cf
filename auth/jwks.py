"""JWKS cache: keys by ``kid`` in process memory.

- Refreshed in the background every JWKS_CACHE_TTL_SECONDS (default 10 min), so a ScaiKey key rotation is
  picked up without a restart.
- An unknown ``kid`` triggers one immediate refetch, rate-limited to one per JWKS_MIN_REFRESH_INTERVAL_SECONDS
  (so a flood of forged kids cannot hammer ScaiKey).
- If ScaiKey is unreachable the cached keys keep serving.
- Every refresh a request triggers (unknown ``kid``, stale cache, *empty* cache) goes through the same
  single-flight, rate-limited path: concurrent callers wait for the one fetch in flight and use its result;
  only the periodic background refresh and the start-up warm-up bypass the rate limit. An empty cache (ScaiKey
  was down at start-up) therefore costs ScaiKey at most one fetch per interval, however many tokens arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import jwt

from clients.scaikey import ScaiKeyClient, ScaiKeyError
from core import metrics
from core.background import cancel_and_wait

log = logging.getLogger("scaivault.auth")


class JwksCache:
    def __init__(self, client: ScaiKeyClient, *, ttl: float, min_refresh_interval: float) -> None:
        self.client = client
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._keys: dict[str, tuple[Any, str]] = {}  # kid -> (public key object, alg)
        self._fetched_at = 0.0
        self._last_attempt = -1e9
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.fetch_count = 0

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch the JWKS. Without ``force`` at most one fetch per ``min_refresh_interval``; a caller that
        waited for a fetch another caller started returns True when that fetch brought new keys."""
        started = self._fetched_at
        async with self._lock:
            if self._fetched_at != started:
                return True  # single flight: a refresh completed while we waited; use its keys
            now = time.monotonic()
            if not force and now - self._last_attempt < self.min_refresh_interval:
                return False
            self._last_attempt = now
            try:
                doc = await self.client.fetch_jwks()
            except ScaiKeyError as exc:
                log.warning("JWKS refresh failed; keeping cached keys", extra={"error": str(exc)})
                metrics.JWKS_REFRESHES.labels("error").inc()
                return False
            self.fetch_count += 1
            metrics.JWKS_REFRESHES.labels("ok").inc()
            keys: dict[str, tuple[Any, str]] = {}
            for jwk in doc.get("keys", []):
                kid = jwk.get("kid")
                if not kid or jwk.get("use", "sig") != "sig":
                    continue
                try:
                    pyjwk = jwt.PyJWK.from_dict(jwk)
                except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError) as exc:
                    log.warning("skipping unusable JWK", extra={"kid": kid, "error": str(exc)})
                    continue
                keys[kid] = (pyjwk.key, jwk.get("alg") or pyjwk.algorithm_name)
            self._keys = keys
            self._fetched_at = now
            return True

    async def get(self, kid: str) -> tuple[Any, str] | None:
        hit = self._keys.get(kid)
        if hit is not None and time.monotonic() - self._fetched_at <= self.ttl:
            return hit
        # Empty cache, stale cache or unknown kid: one rate-limited, single-flight refresh (never forced here,
        # so a flood of tokens while ScaiKey is down or the cache is empty cannot turn into a flood of fetches).
        if await self.refresh():
            hit = self._keys.get(kid)
        return hit

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.ttl)
                await self.refresh(force=True)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
