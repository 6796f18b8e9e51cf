"""Everything the API builds once at start-up and shares across requests (no per-request set-up)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.settings import Settings
from db.engine import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from temporalio.client import Client


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: Redis
    temporal: Client | None = None
    started_at: float = field(default_factory=time.time)
    # Components other modules attach at start-up (authenticator, keyring, policy cache, audit sink, limiter).
    components: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.components[name]
