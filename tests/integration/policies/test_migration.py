"""Migration 0004 downgrades cleanly and upgrades again."""

from __future__ import annotations

import asyncpg

from db import migrate

TABLES = {"policies", "policy_bindings", "secret_policies"}


async def _tables(db_url: str) -> set[str]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_policy_tables_go_down_and_come_back(db_url):
    assert TABLES <= await _tables(db_url)
    migrate.downgrade(db_url, "0003")
    assert not TABLES & await _tables(db_url)
    migrate.upgrade(db_url, "head")
    assert TABLES <= await _tables(db_url)
