"""Group commit for audit entries written outside a change's transaction (reads, denials, failures).

Concurrent requests hand their row to ``submit`` and await a future. One writer task takes everything queued
(up to ``max_batch``), writes it with ONE binary COPY (autocommitted: one transaction, one WAL flush) on its own
dedicated connection, and then resolves every future. While a batch is in flight the next one accumulates, so batches
grow with load and the cost per entry falls. A request therefore returns only after its entry is committed.

Failure is closed: if the insert fails (database down, table missing, privilege revoked) or takes longer than
``timeout`` every waiter gets ``AuditUnavailable`` and the API answers 503 audit_unavailable.

No blind re-send: a batch is sent again only when the connection was already known dead before sending (then
nothing reached the server). A failure once the COPY was sent has an unknown outcome, so the batch fails closed
(503) instead: the entries may have committed, which over-audits requests that got 503 but never loses or
duplicates one. That is why audit_log needs no UNIQUE (id) index (one index less on every insert) and the
group commit can use COPY, which has no ON CONFLICT.

One bad row never fails the others: when the server refuses the COPY because of a row's content (SQLSTATE
class 22 data exception, 23 integrity violation, 54 limit exceeded) or a row cannot be encoded, the outcome is
known (the COPY's transaction rolled back, nothing committed), so the batch is split in halves and each half is
sent again, down to single rows: only the offending row's waiter gets ``AuditUnavailable`` (about 2·log2(n)
extra COPYs for one bad row in n). The recorder already makes every value storable (``audit.entry.pg_text``);
this is the second line of defence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from asyncpg.exceptions import _base as asyncpg_errors

from core import metrics
from repositories import audit as repo

log = logging.getLogger("scaivault.audit")

_CONNECTION_ERRORS = (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, OSError,
                      asyncpg.CannotConnectNowError)


# SQLSTATE classes of a refusal caused by one row's content (the COPY rolled back, nothing committed).
_ROW_ERROR_CLASSES = ("22", "23", "54")


def _is_row_error(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _ROW_ERROR_CLASSES
    # asyncpg encodes COPY records client side: a value it cannot encode fails before anything commits
    if isinstance(exc, asyncpg_errors.DataError):  # client side; also an InterfaceError
        return True
    return isinstance(exc, (UnicodeError, ValueError, TypeError, OverflowError)) and not isinstance(
        exc, _CONNECTION_ERRORS)


class AuditUnavailable(Exception):
    """The audit store could not commit the entry (message is safe to log; it never holds entry values)."""


def _silence(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved: a waiter that timed out no longer cares


class GroupCommitSink:
    def __init__(self, dsn: str, *, max_batch: int = 1000, timeout: float = 5.0,
                 statement_timeout_ms: int = 15000, connect_timeout: float = 5.0,
                 write_rows: Callable[[asyncpg.Connection, Sequence[Sequence[Any]]], Awaitable[None]] = repo.copy_many,
                 ) -> None:
        self._dsn = dsn
        self._write_rows = write_rows  # the benchmark swaps in repo.insert_many (unnest) to compare
        self._max_batch = max_batch
        self._timeout = timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout = connect_timeout
        self._pending: list[tuple[Sequence[Any], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-group-commit")

    async def stop(self) -> None:
        """Flush what is queued, then close the connection."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self._timeout + 1)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        await self._close()

    async def submit(self, row: Sequence[Any]) -> None:
        """Queue one row and return once it is committed; raises AuditUnavailable otherwise."""
        if self._closing:
            metrics.AUDIT_WRITE_FAILURES.inc()
            raise AuditUnavailable("audit writer is shutting down")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_silence)
        self._pending.append((row, fut))
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._timeout)
        except TimeoutError:
            metrics.AUDIT_WRITE_FAILURES.inc()
            raise AuditUnavailable(f"audit write not committed within {self._timeout}s") from None
        except AuditUnavailable:
            metrics.AUDIT_WRITE_FAILURES.inc()  # scaivault_audit_write_failures_total (alert: audit unavailable)
            raise

    # ------------------------------------------------------------------------------------------- writer

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    await self._write(batch)
                except Exception as exc:  # never let the writer die; fail this batch closed
                    log.error("audit writer error", exc_info=exc)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(AuditUnavailable(type(exc).__name__))
            if self._closing:
                return

    async def _write(self, batch: list[tuple[Sequence[Any], asyncio.Future[None]]]) -> None:
        rows = [row for row, _ in batch]
        t0 = time.perf_counter()
        failed = await self._commit(rows, 0)
        metrics.AUDIT_WRITE_LATENCY.observe(time.perf_counter() - t0)
        metrics.AUDIT_BATCH_SIZE.observe(len(rows))
        for i, (_, fut) in enumerate(batch):
            if fut.done():
                continue
            error = failed.get(i)
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(AuditUnavailable(error))

    async def _commit(self, rows: list[Sequence[Any]], offset: int) -> dict[int, str]:
        """Write ``rows`` (positions ``offset``...); returns position -> error for the rows that did not commit."""
        try:
            await self._write_rows(await self._connection(), rows)
            return {}
        except Exception as exc:  # every failure fails its waiters closed
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            row_error = _is_row_error(exc)
            if row_error and not isinstance(exc, asyncpg.PostgresError):
                await self._close()  # refused while encoding, client side: start the retries on a clean connection
            if row_error and len(rows) > 1:
                # Nothing committed: send each half again, so that only the offending row(s) fail.
                mid = len(rows) // 2
                failed = await self._commit(rows[:mid], offset)
                failed.update(await self._commit(rows[mid:], offset + mid))
                return failed
            log.error("audit batch failed", extra={"entries": len(rows), "error": error})
            if not row_error and isinstance(exc, (*_CONNECTION_ERRORS, asyncpg.PostgresError)):
                await self._close()  # start clean (also drops cached statements after schema changes)
            return {offset + i: error for i in range(len(rows))}

    async def _connection(self) -> asyncpg.Connection:
        """The writer's connection; a connection already known to be closed is replaced before sending."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn, timeout=self._connect_timeout,
                server_settings={"application_name": "scaivault-audit",
                                 "statement_timeout": str(self._statement_timeout_ms)},
            )
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()
