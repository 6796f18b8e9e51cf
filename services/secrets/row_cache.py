"""Per-process cache of secret *ciphertext* rows for the read hot path. Plaintext is never cached.

Coherence (docs/secrets.md "Read cache"): every change to a tenant's secrets increments the Redis counter
``sv:secgen:tenant:<tenant_id>`` after its transaction commits and before the writer responds. Each read learns
the counter's current value inside the rate limiter's existing Redis round trip (``RateLimiter.watch``) and
uses a cached row only if it was stored under that same value; otherwise it reads PostgreSQL. So a read that
starts after a write returned sees that write, in every API process.

When the counter is unknown (Redis down: the limiter runs on local buckets; rate limiting disabled) the cache
is bypassed. Entries also expire after ``ttl`` seconds, which bounds staleness if a counter increment itself
failed (logged) while Redis stayed reachable for readers.
"""

from __future__ import annotations

import time
from typing import Any

from core import metrics

GEN_EXTRA = "secrets_gen"


def gen_key(scope: str, owner_id: str) -> str:
    return f"sv:secgen:{scope}:{owner_id}"


class SecretRowCache:
    def __init__(self, *, max_entries: int = 20_000, ttl: float = 5.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._owners: dict[str, tuple[str, dict[tuple[str, int | None], tuple[float, Any]]]] = {}
        self._size = 0
        self._hit = metrics.CACHE_EVENTS.labels("secret_row", "hit")
        self._miss = metrics.CACHE_EVENTS.labels("secret_row", "miss")

    def get(self, owner_id: str, path: str, version: int | None, gen: str) -> Any | None:
        bucket = self._owners.get(owner_id)
        if bucket is not None and bucket[0] == gen:
            hit = bucket[1].get((path, version))
            if hit is not None and hit[0] > time.monotonic():
                self._hit.inc()
                return hit[1]
        self._miss.inc()
        return None

    def put(self, owner_id: str, path: str, version: int | None, gen: str, row: Any) -> None:
        bucket = self._owners.get(owner_id)
        if bucket is None or bucket[0] != gen:
            if bucket is not None:
                self._size -= len(bucket[1])
            bucket = (gen, {})
            self._owners[owner_id] = bucket
        if self._size >= self.max_entries:
            self.clear()
            bucket = (gen, {})
            self._owners[owner_id] = bucket
        if (path, version) not in bucket[1]:
            self._size += 1
        bucket[1][(path, version)] = (time.monotonic() + self.ttl, row)

    def invalidate(self, owner_id: str) -> None:
        bucket = self._owners.pop(owner_id, None)
        if bucket is not None:
            self._size -= len(bucket[1])

    def clear(self) -> None:
        self._owners.clear()
        self._size = 0
