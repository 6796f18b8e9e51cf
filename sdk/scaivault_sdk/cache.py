"""Optional in-process read cache for secret values, with a short TTL and event-driven invalidation.

The troubleshooting guidance for clients is: cache reads for a few seconds, and drop an entry as soon as a
``secret.updated`` / ``secret.rotated`` / ``secret.deleted`` event arrives by webhook or subscription. Feed
events to ``ScaiVaultClient.handle_event`` (or ``ReadCache.invalidate_event``). A policy event clears the
whole cache, since access may have been withdrawn. The client's own writes and deletes invalidate too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

#: Event types that change what a read returns for the event's path.
PATH_EVENTS = ("secret.",)
#: Event types that may change who can read anything.
GLOBAL_EVENTS = ("policy.",)


class ReadCache:
    """``(base, path, version) -> value`` for ``ttl`` seconds; at most ``max_entries`` (oldest dropped)."""

    def __init__(self, ttl: float = 30.0, max_entries: int = 1024) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: dict[tuple[str, str, int | None], tuple[float, Any]] = {}
        self._lock = threading.Lock()  # the sync client calls from a different thread than handle_event

    def get(self, base: str, path: str, version: int | None) -> Any | None:
        with self._lock:
            hit = self._items.get((base, path, version))
            if hit is None:
                return None
            if time.monotonic() >= hit[0]:
                del self._items[(base, path, version)]
                return None
            return hit[1]

    def put(self, base: str, path: str, version: int | None, value: Any) -> None:
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.pop(next(iter(self._items)))
            self._items[(base, path, version)] = (time.monotonic() + self.ttl, value)

    def invalidate_path(self, path: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[1] == path]:
                del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def invalidate_event(self, event: Mapping[str, Any]) -> None:
        """Apply one event envelope (lifecycle.md §5.1): drop what it may have changed."""
        event_type = str(event.get("event_type") or "")
        path = event.get("path")
        if event_type.startswith(PATH_EVENTS) and isinstance(path, str) and path:
            self.invalidate_path(path)
        elif event_type.startswith(GLOBAL_EVENTS) or event_type.startswith(PATH_EVENTS):
            self.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
