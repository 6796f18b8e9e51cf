"""The one connection pool: an async SQLAlchemy engine on asyncpg, sized by DB_POOL_SIZE.

Two ways in:
- ``Database.session()``: an ``AsyncSession`` for ordinary CRUD (repositories built on SQLAlchemy Core/ORM).
- ``Database.raw()``: the pooled *driver* connection (asyncpg) for hot paths. No implicit BEGIN/ROLLBACK, so a
  read is one round trip with asyncpg's prepared-statement cache; open ``conn.transaction()`` for writes.

``driver_conn(session)`` gives the asyncpg connection behind a session's current transaction, so audit and
outbox helpers (which take an asyncpg connection) can join a session's transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.settings import Settings


class Database:
    def __init__(self, settings: Settings, *, pool_size: int | None = None, application_name: str = "scaivault"):
        size = pool_size or settings.db_pool_size
        self.pool_size = size
        self.engine: AsyncEngine = create_async_engine(
            settings.sqlalchemy_url,
            pool_size=size,
            max_overflow=0,
            pool_timeout=10,
            pool_recycle=1800,
            connect_args={
                "server_settings": {
                    "application_name": application_name,
                    "statement_timeout": str(settings.db_statement_timeout_ms),
                },
                "statement_cache_size": 512,
                **({"ssl": settings.db_ssl_mode} if settings.db_ssl_mode else {}),
            },
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessionmaker() as s:
            try:
                yield s
                await s.commit()
            except BaseException:
                await s.rollback()
                raise

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.engine.connect() as c:
            raw = await c.get_raw_connection()
            yield raw.driver_connection  # type: ignore[misc]

    def pool_stats(self) -> dict[str, int]:
        pool: Any = self.engine.pool
        checked_out = int(pool.checkedout())
        return {"pool_size": self.pool_size, "pool_in_use": checked_out, "pool_available": self.pool_size - checked_out}

    async def ping(self) -> None:
        async with self.raw() as conn:
            await conn.fetchval("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


async def driver_conn(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection carrying ``session``'s current transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]
