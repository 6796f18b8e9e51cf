"""The one connection pool: an async SQLAlchemy engine on asyncpg, sized by DB_POOL_SIZE.

Two ways in:
- ``Database.session()``: an ``AsyncSession`` for ordinary CRUD (repositories built on SQLAlchemy Core/ORM).
- ``Database.raw()``: a pooled *driver* connection (asyncpg) for hot paths. No implicit BEGIN/ROLLBACK, so a
  read is one round trip with asyncpg's prepared-statement cache; open ``conn.transaction()`` for writes.
  These come from :class:`RawPool`, a deliberately tiny pool of plain asyncpg connections (its own
  ``DB_POOL_SIZE`` connections, opened lazily): checking a connection out of SQLAlchemy's pool costs ~190 µs
  and asyncpg's own pool runs a reset query on every release, which together capped a one-query read at
  ~1.5k req/s on a 2-core box. Rule for users: leave no session state behind (no SET, LISTEN or advisory
  locks); an open transaction is rolled back on release, and a connection released after a cancellation
  or a connection error is closed instead of reused.

``driver_conn(session)`` gives the asyncpg connection behind a session's current transaction, so audit and
outbox helpers (which take an asyncpg connection) can join a session's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.settings import Settings


class PoolExhausted(TimeoutError):
    """Every connection of the pool stayed busy for the whole acquire timeout: the API answers
    ``503 service_unavailable`` with ``Retry-After`` (api/errors.py), never a 500."""


class RawPool:
    """Up to ``size`` asyncpg connections handed out LIFO; acquire on a warm pool never awaits."""

    def __init__(self, dsn: str, size: int, *, server_settings: dict[str, str], timeout: float = 10.0,
                 statement_cache_size: int = 512) -> None:
        self.dsn = dsn
        self.size = size
        self.timeout = timeout
        self._connect_kwargs: dict[str, Any] = {"server_settings": server_settings,
                                                "statement_cache_size": statement_cache_size}
        self._idle: deque[asyncpg.Connection] = deque()
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0
        self._in_use = 0

    async def acquire(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                self._in_use += 1
                return conn
            self._open -= 1
        if self._open >= self.size:
            fut: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                async with asyncio.timeout(self.timeout):
                    got = await fut
            except BaseException as exc:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._give(fut.result())  # handed over just as we gave up: pass it on
                if isinstance(exc, TimeoutError):
                    raise PoolExhausted(f"no database connection became free within {self.timeout:g} s "
                                        f"({self.size} in use)") from None
                raise
            if got is not None:
                self._in_use += 1
                return got
            # ``None``: a connection was dropped, so this waiter may open a new one (slot already counted)
        else:
            self._open += 1
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.timeout, **self._connect_kwargs)
        except BaseException:
            self._open -= 1
            self._give(None)
            raise
        self._in_use += 1
        return conn

    def _give(self, conn: asyncpg.Connection | None) -> None:
        """Hand a connection (or, with None, a free slot) to the first live waiter, else keep it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if conn is None:
                    self._open += 1
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    async def release(self, conn: asyncpg.Connection, *, discard: bool = False) -> None:
        self._in_use -= 1
        if not discard and not conn.is_closed() and conn.is_in_transaction():
            try:
                await conn.execute("ROLLBACK")
            except Exception:
                discard = True
        if discard or conn.is_closed():
            conn.terminate()
            self._open -= 1
            self._give(None)
            return
        self._give(conn)

    def stats(self) -> dict[str, int]:
        return {"size": self.size, "open": self._open, "in_use": self._in_use}

    async def close(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            self._open -= 1


_DISCARD_ON = (asyncio.CancelledError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, OSError)

# Server-side errors that mean "this connection is gone / no connection can be had right now": class 08
# (connection exception), 57P01-57P03 (admin/crash shutdown, cannot connect now), 53300 (too many connections).
_LOST_SERVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)
_LOST_SQLSTATES = ("57P01", "57P02", "57P03", "53300")
_DRIVER_DIRS = tuple(f"{os.sep}{name}{os.sep}" for name in ("asyncpg", "sqlalchemy", "psycopg"))


def _raised_by_driver(exc: BaseException) -> bool:
    """The exception passed through the database driver's (or SQLAlchemy's pool's) own frames."""
    tb = exc.__traceback__
    while tb is not None:
        if any(d in tb.tb_frame.f_code.co_filename for d in _DRIVER_DIRS):
            return True
        tb = tb.tb_next
    return False


def _lost(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, _LOST_SERVER_ERRORS):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed" / "... closed in the middle of operation"; never a client-side DataError
        # (a value asyncpg cannot encode) or a misuse such as "another operation is in progress"
        return not isinstance(exc, asyncpg_base.DataError) and "closed" in str(exc)
    if type(exc).__module__.startswith("psycopg") and type(exc).__name__ == "OperationalError":
        state = getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
        return state is None or state.startswith("08") or state in _LOST_SQLSTATES
    # ConnectionRefusedError / ConnectionResetError / TimeoutError while the driver connects or talks
    return isinstance(exc, OSError) and _raised_by_driver(exc)


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it wraps: ``__cause__``, ``__context__``, SQLAlchemy's ``orig``) means
    the database connection was cut (PostgreSQL shut down or terminated the backend mid-query) or could not be
    opened (refused, starting up, too many connections). The API answers such a request
    ``503 service_unavailable`` naming the database (api/errors.py), never a 500."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 16:
            continue
        seen.add(id(e))
        if _lost(e):
            return True
        todo.extend((e.__cause__, e.__context__, getattr(e, "orig", None)))
    return False


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
        self.raw_pool = RawPool(
            settings.asyncpg_dsn, size, timeout=settings.db_pool_timeout_seconds,
            server_settings={"application_name": application_name,
                             "statement_timeout": str(settings.db_statement_timeout_ms)},
        )

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
        conn = await self.raw_pool.acquire()
        try:
            yield conn
        except BaseException as exc:
            await self.raw_pool.release(conn, discard=isinstance(exc, _DISCARD_ON))
            raise
        await self.raw_pool.release(conn)

    def pool_stats(self) -> dict[str, int]:
        """SQLAlchemy session pool + raw pool, as one set of numbers (each has ``pool_size`` connections)."""
        pool: Any = self.engine.pool
        checked_out = int(pool.checkedout()) + self.raw_pool.stats()["in_use"]
        size = 2 * self.pool_size
        return {"pool_size": size, "pool_in_use": checked_out, "pool_available": size - checked_out}

    async def ping(self) -> None:
        async with self.raw() as conn:
            await conn.fetchval("SELECT 1")

    async def dispose(self) -> None:
        await self.raw_pool.close()
        await self.engine.dispose()


async def driver_conn(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection carrying ``session``'s current transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]
