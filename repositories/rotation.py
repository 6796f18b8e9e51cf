"""SQL for rotation policies, assignments, marks and history (migration 0012). Tenant explicit everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

_POLICY_COLS = (
    "p.id, p.tenant_id, p.name, p.description, p.interval, p.interval_seconds, p.grace_period, p.grace_seconds,"
    " p.warn_before, p.auto_generate, p.secret_policy_id, p.webhook_ids, p.is_active, p.created_at, p.created_by,"
    " p.updated_at, p.rotation_webhook_id, (SELECT count(*) FROM rotation_assignments a WHERE a.policy_id = p.id)::int AS secrets_count"
)
POLICY_FIELDS = ("name", "description", "interval", "interval_seconds", "grace_period", "grace_seconds",
                 "warn_before", "auto_generate", "secret_policy_id", "webhook_ids", "is_active", "rotation_webhook_id")


def _db_value(name: str, value: Any) -> Any:
    return orjson.dumps(value).decode() if name == "webhook_ids" else value


# ------------------------------------------------------------------------------------------ policies
async def insert_policy(conn: asyncpg.Connection, *, id: str, tenant_id: str, created_by: str,
                        values: dict[str, Any]) -> asyncpg.Record:
    cols = list(POLICY_FIELDS)
    params = [_db_value(c, values[c]) for c in cols]
    marks = ", ".join(f"${i + 4}" + ("::jsonb" if c == "webhook_ids" else "") for i, c in enumerate(cols))
    await conn.execute(
        f"INSERT INTO rotation_policies (id, tenant_id, created_by, {', '.join(cols)}) VALUES ($1, $2, $3, {marks})",
        id, tenant_id, created_by, *params)
    row = await get_policy(conn, tenant_id, id)
    assert row is not None
    return row


async def get_policy(conn: asyncpg.Connection, tenant_id: str, policy_id: str, *,
                     for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE OF p" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_POLICY_COLS} FROM rotation_policies p WHERE p.tenant_id = $1 AND p.id = $2{lock}",
        tenant_id, policy_id)


async def name_taken(conn: asyncpg.Connection, tenant_id: str, name: str, except_id: str | None = None) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM rotation_policies WHERE tenant_id = $1 AND name = $2 AND ($3::text IS NULL OR id <> $3)",
        tenant_id, name, except_id))


async def list_policies(conn: asyncpg.Connection, tenant_id: str, *, active_only: bool, after: str | None,
                        limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_POLICY_COLS} FROM rotation_policies p WHERE p.tenant_id = $1 AND (NOT $2 OR p.is_active)"
        " AND ($3::text IS NULL OR p.id > $3) ORDER BY p.id LIMIT $4", tenant_id, active_only, after, limit)


async def update_policy(conn: asyncpg.Connection, tenant_id: str, policy_id: str,
                        values: dict[str, Any]) -> asyncpg.Record:
    cols = [c for c in POLICY_FIELDS if c in values]
    sets = ", ".join(f"{c} = ${i + 3}" + ("::jsonb" if c == "webhook_ids" else "") for i, c in enumerate(cols))
    await conn.execute(
        f"UPDATE rotation_policies SET {sets + ', ' if sets else ''}updated_at = now()"
        " WHERE tenant_id = $1 AND id = $2", tenant_id, policy_id, *[_db_value(c, values[c]) for c in cols])
    row = await get_policy(conn, tenant_id, policy_id)
    assert row is not None
    return row


async def delete_policy(conn: asyncpg.Connection, tenant_id: str, policy_id: str) -> list[asyncpg.Record]:
    """Detach every secret (clear ``secrets.rotation_policy_id``), delete the policy; returns the detached ids."""
    detached = await conn.fetch(
        "UPDATE secrets s SET rotation_policy_id = NULL FROM rotation_assignments a"
        " WHERE a.policy_id = $2 AND a.tenant_id = $1 AND s.id = a.secret_id RETURNING s.id", tenant_id, policy_id)
    await conn.execute("DELETE FROM rotation_policies WHERE tenant_id = $1 AND id = $2", tenant_id, policy_id)
    return detached


async def policy_exists(conn: asyncpg.Connection, tenant_id: str, policy_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM rotation_policies WHERE tenant_id = $1 AND id = $2",
                                    tenant_id, policy_id))


# --------------------------------------------------------------------------------------- assignments
async def upsert_assignment(conn: asyncpg.Connection, *, secret_id: int, tenant_id: str, policy_id: str,
                            anchor_at: datetime | None = None) -> bool:
    """Attach (anchor = now) or move to another policy (the anchor is kept). True when something changed."""
    status = await conn.execute(
        "INSERT INTO rotation_assignments (secret_id, tenant_id, policy_id, anchor_at)"
        " VALUES ($1, $2, $3, coalesce($4, now()))"
        " ON CONFLICT (secret_id) DO UPDATE SET policy_id = EXCLUDED.policy_id, workflow_started = false"
        " WHERE rotation_assignments.policy_id <> EXCLUDED.policy_id", secret_id, tenant_id, policy_id, anchor_at)
    return not status.endswith(" 0")


async def secret_with_policy(conn: asyncpg.Connection, scope: str, owner_id: str, path: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT s.id, s.deleted_at, a.policy_id FROM secrets s LEFT JOIN rotation_assignments a ON a.secret_id = s.id"
        " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path = $3", scope, owner_id, path)


async def lock_tenant_secret(conn: asyncpg.Connection, tenant_id: str, path: str, *,
                             lock: bool = True) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, path, current_version, deleted_at, rotation_policy_id FROM secrets WHERE scope = 'tenant'"
        " AND owner_id = $1 AND path = $2" + (" FOR UPDATE" if lock else ""), tenant_id, path)


async def link_secret(conn: asyncpg.Connection, secret_id: int, policy_id: str | None) -> None:
    await conn.execute("UPDATE secrets SET rotation_policy_id = $2 WHERE id = $1", secret_id, policy_id)


async def delete_assignment(conn: asyncpg.Connection, secret_id: int) -> bool:
    status = await conn.execute("DELETE FROM rotation_assignments WHERE secret_id = $1", secret_id)
    return status.endswith(" 1")


async def assignment(conn: asyncpg.Connection, secret_id: int, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE OF a" if for_update else ""
    return await conn.fetchrow(
        "SELECT a.*, s.path, s.current_version, s.deleted_at, s.secret_type, s.partner_id, s.secret_policy_id"
        " AS secret_secret_policy_id FROM rotation_assignments a JOIN secrets s ON s.id = a.secret_id"
        f" WHERE a.secret_id = $1{lock}", secret_id)


async def assignments_of(conn: asyncpg.Connection, tenant_id: str, policy_id: str,
                         paths: list[str] | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.*, s.path, s.current_version FROM rotation_assignments a JOIN secrets s ON s.id = a.secret_id"
        " WHERE a.tenant_id = $1 AND a.policy_id = $2 AND s.deleted_at IS NULL"
        " AND ($3::text[] IS NULL OR s.path = ANY($3)) ORDER BY s.path", tenant_id, policy_id, paths)


async def set_status(conn: asyncpg.Connection, secret_id: int, status: str,
                     error: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "UPDATE rotation_assignments SET status = $2, last_error = coalesce($3::jsonb, last_error) WHERE secret_id = $1",
        secret_id, status, orjson.dumps(error).decode() if error else None)


async def advance(conn: asyncpg.Connection, secret_id: int, rotated_at: datetime) -> int:
    """A rotation landed: the next cycle starts at ``rotated_at``. Returns the new cycle number."""
    return int(await conn.fetchval(
        "UPDATE rotation_assignments SET cycle = cycle + 1, anchor_at = $2, last_rotated_at = $2,"
        " status = 'scheduled', last_error = NULL WHERE secret_id = $1 RETURNING cycle", secret_id, rotated_at))


async def mark_started(conn: asyncpg.Connection, secret_ids: list[int]) -> None:
    await conn.execute("UPDATE rotation_assignments SET workflow_started = true WHERE secret_id = ANY($1)",
                       secret_ids)


async def mark_unstarted(conn: asyncpg.Connection, secret_ids: list[int]) -> None:
    await conn.execute("UPDATE rotation_assignments SET workflow_started = false WHERE secret_id = ANY($1)",
                       secret_ids)


async def unstarted(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT secret_id, tenant_id FROM rotation_assignments WHERE NOT workflow_started"
                            " ORDER BY assigned_at LIMIT $1", limit)


async def due(conn: asyncpg.Connection, tenant_id: str, *, before: datetime, include_overdue: bool,
              policy_id: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT s.path, a.policy_id, p.name AS policy_name, a.anchor_at, a.last_rotated_at, a.status,"
        " a.anchor_at + make_interval(secs => p.interval_seconds) AS due_at, p.grace_seconds"
        " FROM rotation_assignments a JOIN rotation_policies p ON p.id = a.policy_id"
        " JOIN secrets s ON s.id = a.secret_id"
        " WHERE a.tenant_id = $1 AND s.deleted_at IS NULL AND ($4::text IS NULL OR a.policy_id = $4)"
        " AND (a.anchor_at + make_interval(secs => p.interval_seconds) <= $2 OR a.status IN ('due', 'overdue'))"
        " AND ($3 OR a.status <> 'overdue')"
        " ORDER BY due_at, s.path LIMIT $5", tenant_id, before, include_overdue, policy_id, limit)


async def queue_depth(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM rotation_assignments a JOIN rotation_policies p ON p.id = a.policy_id"
        " WHERE a.status IN ('due', 'overdue', 'failed')"
        " OR a.anchor_at + make_interval(secs => p.interval_seconds) <= now()"))


# --------------------------------------------------------------------------------------------- marks
async def add_mark(conn: asyncpg.Connection, secret_id: int, cycle: int, mark: str, *, emitted: bool = True) -> bool:
    status = await conn.execute(
        "INSERT INTO rotation_marks (secret_id, cycle, mark, emitted) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING", secret_id, cycle, mark, emitted)
    return status.endswith(" 1")


async def marks(conn: asyncpg.Connection, secret_id: int, cycle: int) -> list[str]:
    return [r["mark"] for r in await conn.fetch(
        "SELECT mark FROM rotation_marks WHERE secret_id = $1 AND cycle = $2 ORDER BY created_at", secret_id, cycle)]


# ------------------------------------------------------------------------------------------- history
async def insert_history(conn: asyncpg.Connection, **row: Any) -> asyncpg.Record:
    if row.get("error") is not None:
        row["error"] = orjson.dumps(row["error"]).decode()
    cols = list(row)
    marks_ = ", ".join(f"${i + 1}" + ("::jsonb" if c == "error" else "") for i, c in enumerate(cols))
    return await conn.fetchrow(
        f"INSERT INTO rotation_history ({', '.join(cols)}) VALUES ({marks_}) RETURNING *", *row.values())


async def update_history(conn: asyncpg.Connection, history_id: str, **row: Any) -> asyncpg.Record | None:
    if row.get("error") is not None:
        row["error"] = orjson.dumps(row["error"]).decode()
    cols = list(row)
    sets = ", ".join(f"{c} = ${i + 2}" + ("::jsonb" if c == "error" else "") for i, c in enumerate(cols))
    return await conn.fetchrow(f"UPDATE rotation_history SET {sets} WHERE id = $1 RETURNING *",
                               history_id, *row.values())


async def get_history(conn: asyncpg.Connection, history_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM rotation_history WHERE id = $1", history_id)


async def pending_history(conn: asyncpg.Connection, secret_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM rotation_history WHERE secret_id = $1 AND status = 'pending'"
                               " ORDER BY id DESC LIMIT 1", secret_id)


async def list_history(conn: asyncpg.Connection, tenant_id: str, policy_id: str, *, status: str | None,
                       after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM rotation_history WHERE tenant_id = $1 AND policy_id = $2 AND ($3::text IS NULL OR status = $3)"
        " AND ($4::text IS NULL OR id < $4) ORDER BY id DESC LIMIT $5", tenant_id, policy_id, status, after, limit)


# ------------------------------------------------------------------------------------------ versions
async def version_for_key(conn: asyncpg.Connection, secret_id: int, key: str) -> int | None:
    v = await conn.fetchval("SELECT version FROM secret_versions WHERE secret_id = $1 AND rotation_key = $2",
                            secret_id, key)
    return None if v is None else int(v)


async def set_version_key(conn: asyncpg.Connection, secret_id: int, version: int, key: str) -> None:
    await conn.execute("UPDATE secret_versions SET rotation_key = $3 WHERE secret_id = $1 AND version = $2",
                       secret_id, version, key)


async def end_grace(conn: asyncpg.Connection, secret_id: int, version: int, until: datetime) -> None:
    """The superseded version stays readable until ``until`` (an earlier own expiry is kept)."""
    await conn.execute(
        "UPDATE secret_versions SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $3"
        " THEN expires_at ELSE $3 END WHERE secret_id = $1 AND version = $2", secret_id, version, until)


# ------------------------------------------------------------------------------------------- expiry
async def expiring(conn: asyncpg.Connection, default_thresholds: str, limit: int) -> list[asyncpg.Record]:
    """Live tenant secrets with an expiry notice owed: ``expires_at`` has passed without its ``expired`` mark, or
    a ``notify_before`` threshold (the secret's, else ``default_thresholds``) has passed without its mark.
    Thresholds are validated durations (``7d``, ``12h``), which PostgreSQL reads as intervals too."""
    return await conn.fetch(
        "SELECT s.id, s.tenant_id, s.partner_id, s.path, s.expires_at, s.notify_before, s.current_version"
        " FROM secrets s WHERE s.scope = 'tenant' AND s.expires_at IS NOT NULL AND s.deleted_at IS NULL"
        " AND s.expires_at <= now() + interval '400 days' AND ("
        "  (s.expires_at <= now() AND NOT EXISTS (SELECT 1 FROM secret_expiry_marks m WHERE m.secret_id = s.id"
        "     AND m.expires_at = s.expires_at AND m.mark = 'expired'))"
        "  OR EXISTS (SELECT 1 FROM unnest(string_to_array(coalesce(nullif(s.notify_before, ''), $1), ',')) t"
        "     WHERE s.expires_at > now() AND s.expires_at - trim(t)::interval <= now()"
        "     AND NOT EXISTS (SELECT 1 FROM secret_expiry_marks m WHERE m.secret_id = s.id"
        "       AND m.expires_at = s.expires_at AND m.mark = trim(t))))"
        " ORDER BY s.expires_at LIMIT $2", default_thresholds, limit)


async def expiry_marks(conn: asyncpg.Connection, secret_id: int, expires_at: datetime) -> set[str]:
    return {r["mark"] for r in await conn.fetch(
        "SELECT mark FROM secret_expiry_marks WHERE secret_id = $1 AND expires_at = $2", secret_id, expires_at)}


async def add_expiry_mark(conn: asyncpg.Connection, secret_id: int, expires_at: datetime, mark: str) -> bool:
    status = await conn.execute("INSERT INTO secret_expiry_marks (secret_id, expires_at, mark) VALUES ($1, $2, $3)"
                                " ON CONFLICT DO NOTHING", secret_id, expires_at, mark)
    return status.endswith(" 1")


# ------------------------------------------------------------------------------- outside-system saga
async def put_staged(conn: asyncpg.Connection, secret_id: int, cycle: int, ciphertext: bytes) -> None:
    await conn.execute(
        "INSERT INTO rotation_staged (secret_id, cycle, ciphertext) VALUES ($1, $2, $3) ON CONFLICT (secret_id)"
        " DO UPDATE SET cycle = EXCLUDED.cycle, ciphertext = EXCLUDED.ciphertext, created_at = now()",
        secret_id, cycle, ciphertext)


async def get_staged(conn: asyncpg.Connection, secret_id: int, cycle: int) -> bytes | None:
    v = await conn.fetchval("SELECT ciphertext FROM rotation_staged WHERE secret_id = $1 AND cycle = $2",
                            secret_id, cycle)
    return None if v is None else bytes(v)


async def delete_staged(conn: asyncpg.Connection, secret_id: int) -> None:
    await conn.execute("DELETE FROM rotation_staged WHERE secret_id = $1", secret_id)
