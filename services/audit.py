"""Audit queries (spec core.md §10.5, §11.3): tenant-scoped, newest first, opaque cursor."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from api.context import RequestContext
from audit.entry import iso, public
from core.cursor import decode_seq_cursor, encode_seq_cursor
from core.errors import AppError
from db.engine import Database
from repositories import audit as repo
from repositories.audit import LogFilter

MAX_LIMIT = 1000
SUMMARY_WINDOW = timedelta(days=30)


def encode_cursor(seq: int | None) -> str | None:
    return encode_seq_cursor(seq)


def decode_cursor(cursor: str | None) -> int | None:
    return decode_seq_cursor(cursor)


def make_filter(*, since: datetime | None, until: datetime | None, action: str | None, **kw: Any) -> LogFilter:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise AppError("validation_error", "'from' must be before 'to'",
                       {"fields": [{"field": "from", "message": "must be before 'to'"}]})
    actions = [a.strip() for a in action.split(",") if a.strip()] if action else None
    return LogFilter(since=since, until=until, actions=actions or None, **kw)


def _utc(ts: datetime | None) -> datetime | None:
    """UTC (naive means UTC). The API's query types (api/params.py) already refuse datetimes that overflow."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise AppError("validation_error", "datetime is outside the supported range once converted to UTC",
                       {"fields": [{"field": "from", "message": "out of range"}]}) from None


async def list_logs(db: Database, ctx: RequestContext, f: LogFilter, *, cursor: str | None,
                    limit: int) -> dict[str, Any]:
    before = decode_cursor(cursor)
    async with db.raw() as conn:
        rows = await repo.list_logs(conn, ctx.tenant_id, f, before_seq=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"logs": [public(r) for r in rows], "cursor": encode_cursor(rows[-1]["seq"]) if more else None,
            "has_more": more}


async def export_lines(db: Database, tenant_id: str, f: LogFilter,
                       limit: int | None = None) -> AsyncGenerator[bytes, None]:
    """NDJSON, oldest first, streamed from a server-side cursor; at most ``limit`` entries when given."""
    async with db.raw() as conn, conn.transaction(readonly=True):
        async for row in repo.stream_logs(conn, tenant_id, f, limit):
            yield orjson.dumps(public(row)) + b"\n"


async def export_stream(db: Database, tenant_id: str, f: LogFilter, limit: int | None = None) -> AsyncIterator[bytes]:
    """``export_lines`` with its first line already fetched: the query has run (and any error is raised here,
    as an error response) before the 200 and the first byte are sent, so a stream never dies at its start."""
    lines = export_lines(db, tenant_id, f, limit)
    try:
        first = await anext(lines, None)
    except BaseException:
        await lines.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is None:
                return
            yield first
            async for line in lines:
                yield line
        finally:
            await lines.aclose()

    return body()


async def secret_trail(db: Database, ctx: RequestContext, path: str, f: LogFilter, *, cursor: str | None,
                       limit: int) -> dict[str, Any]:
    f.secret_path = path
    page = await list_logs(db, ctx, f, cursor=cursor, limit=limit)
    async with db.raw() as conn:
        s = await repo.secret_summary(conn, ctx.tenant_id, path, datetime.now(UTC) - SUMMARY_WINDOW)
    return {"path": path, **page, "summary": {
        "reads_30d": s["reads"], "writes_30d": s["writes"], "unique_readers_30d": s["readers"],
        "failed_30d": s["failed"], "last_read_at": iso(s["last_read"]) if s["last_read"] else None}}


async def identity_trail(db: Database, ctx: RequestContext, identity_id: str, f: LogFilter, *,
                         cursor: str | None, limit: int) -> dict[str, Any]:
    f.identity_id = identity_id
    page = await list_logs(db, ctx, f, cursor=cursor, limit=limit)
    async with db.raw() as conn:
        totals, by_action, paths = await repo.identity_summary(conn, ctx.tenant_id, identity_id,
                                                               datetime.now(UTC) - SUMMARY_WINDOW)
    return {"identity_id": identity_id, **page, "summary": {
        "events_30d": totals["events"], "failed_30d": totals["failed"],
        "last_seen_at": iso(totals["last_seen"]) if totals["last_seen"] else None,
        "actions_30d": {r["action"]: r["n"] for r in by_action},
        # every path the identity ever touched successfully (offboarding: rotate these), capped at 1000
        "paths_touched": paths}}


def _window_start(until: datetime) -> datetime:
    """``until`` minus the summary window, clamped at the earliest datetime (``to=0001-01-05`` is valid)."""
    try:
        return until - SUMMARY_WINDOW
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


async def summary(db: Database, ctx: RequestContext, since: datetime | None,
                  until: datetime | None) -> dict[str, Any]:
    until = _utc(until) or datetime.now(UTC)
    since = _utc(since) or _window_start(until)
    if since >= until:
        raise AppError("validation_error", "'from' must be before 'to'",
                       {"fields": [{"field": "from", "message": "must be before 'to'"}]})
    async with db.raw() as conn:
        s = await repo.summary(conn, ctx.tenant_id, since, until)
    return {
        "from": iso(since), "to": iso(until), "total_events": s["total"], "successful_events": s["ok"],
        "failed_events": s["total"] - s["ok"],
        "by_action": {r["k"]: r["n"] for r in s["by_action"]},
        "by_identity_type": {r["k"]: r["n"] for r in s["by_identity_type"]},
        "top_identities": [{"identity_id": r["k"], "count": r["n"]} for r in s["top_identities"]],
        "top_paths": [{"path": r["k"], "count": r["n"]} for r in s["top_paths"]],
    }
