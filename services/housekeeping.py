"""The sweeper registry. A sweeper deletes or fixes at most ``limit`` rows per call and returns how many it
touched; it must be idempotent (Temporal may run a batch twice). Features register theirs with ``sweeper``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from core.settings import Settings
from repositories.events import outbox as events_repo

Sweeper = Callable[[asyncpg.Connection, Settings, int], Awaitable[int]]
SWEEPERS: dict[str, Sweeper] = {}


def sweeper(name: str) -> Callable[[Sweeper], Sweeper]:
    def register(fn: Sweeper) -> Sweeper:
        SWEEPERS[name] = fn
        return fn

    return register


@sweeper("prune_dispatched_events")
async def prune_dispatched_events(conn: asyncpg.Connection, settings: Settings, limit: int) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=settings.event_retention_days)
    return await events_repo.prune_dispatched(conn, older_than=cutoff, limit=limit)


def load_all() -> dict[str, Sweeper]:
    """Import every feature module that registers sweepers, then return the registry."""
    import importlib

    for module in SWEEPER_MODULES:
        importlib.import_module(module)
    return SWEEPERS


# Feature modules that register sweepers on import (a feature adds its module here).
SWEEPER_MODULES: list[str] = ["audit.sweepers", "services.identity.sync", "services.secrets.service",
                               "services.rotation.expiry"]
