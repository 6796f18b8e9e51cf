"""Migration 0006 goes down and up again cleanly."""

from __future__ import annotations

import asyncio

import asyncpg


async def test_identity_migration_downgrade_and_upgrade(db_url):
    from db.migrate import move_to, status

    head = status(db_url).head
    await asyncio.to_thread(move_to, db_url, "0004")
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('identity_users')") is None
    finally:
        await conn.close()
    await asyncio.to_thread(move_to, db_url, head)
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('identity_users')") is not None
    finally:
        await conn.close()
