"""Housekeeping sweepers: catch-up sealing (the worker's sealer loop normally keeps up) and retention pruning."""

from __future__ import annotations

import asyncpg

from audit.sealer import prune_once, seal_once, settings_chain_key
from core.settings import Settings
from services.housekeeping import sweeper


@sweeper("seal_audit_chain")
async def seal_audit_chain(conn: asyncpg.Connection, settings: Settings, limit: int) -> int:
    return await seal_once(conn, limit, key=settings_chain_key(settings))


@sweeper("prune_audit_log")
async def prune_audit_log(conn: asyncpg.Connection, settings: Settings, limit: int) -> int:
    return await prune_once(conn, settings.audit_retention_days, limit, key=settings_chain_key(settings))
