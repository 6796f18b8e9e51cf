"""SQL for dynamic credentials: ``dynamic_engines``, ``dynamic_roles``, ``dynamic_leases`` (migration 0013).

Every tenant-owned query takes ``tenant_id``; the revoker's queries are per engine (the engine id is only ever
taken from a row the tenant owns, or from the revoker workflow's own input).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

ENGINE_COLS = ("id, tenant_id, partner_id, name, type, plugin, config, default_ttl, default_ttl_seconds, max_ttl,"
               " max_ttl_seconds, revocation_paused, connection_status, last_checked_at, last_error,"
               " revoker_wake_at, created_at, created_by, updated_at")
ROLE_COLS = "id, tenant_id, engine_id, name, config, default_ttl, max_ttl, created_at, created_by, updated_at"
LEASE_COLS = ("id, tenant_id, partner_id, engine_id, engine_name, role_name, username, external_id, status,"
              " created_at, created_by, expires_at, max_expires_at, renewed_at, revoke_reason, revoke_requested_by,"
              " revoked_at, attempts, next_attempt_at, last_error")
LIVE = ("pending", "active", "revoking", "revocation_failed")


def config_of(row: asyncpg.Record) -> dict[str, Any]:
    raw = row["config"]
    return orjson.loads(raw) if isinstance(raw, str | bytes) else dict(raw)


def _json(doc: dict[str, Any]) -> str:
    return orjson.dumps(doc).decode()


# ------------------------------------------------------------------------------------------- engines
async def insert_engine(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, name: str,
                        type: str, plugin: str | None, config: dict[str, Any], default_ttl: str,
                        default_ttl_seconds: int, max_ttl: str, max_ttl_seconds: int, created_by: str,
                        connection_status: str, last_error: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO dynamic_engines (id, tenant_id, partner_id, name, type, plugin, config, default_ttl,"
        " default_ttl_seconds, max_ttl, max_ttl_seconds, created_by, connection_status, last_error, last_checked_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9,$10,$11,$12,$13,$14, now())"
        f" RETURNING {ENGINE_COLS}", id, tenant_id, partner_id, name, type, plugin, _json(config), default_ttl,
        default_ttl_seconds, max_ttl, max_ttl_seconds, created_by, connection_status, last_error)


async def get_engine(conn: asyncpg.Connection, tenant_id: str, name: str, *,
                     for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {ENGINE_COLS} FROM dynamic_engines WHERE tenant_id = $1 AND name = $2{lock}",
                               tenant_id, name)


async def engine_by_id(conn: asyncpg.Connection, tenant_id: str, engine_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {ENGINE_COLS} FROM dynamic_engines WHERE tenant_id = $1 AND id = $2",
                               tenant_id, engine_id)


async def list_engines(conn: asyncpg.Connection, tenant_id: str, *, after: str | None,
                       limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ENGINE_COLS} FROM dynamic_engines WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2)"
        " ORDER BY id LIMIT $3", tenant_id, after, limit)


async def all_engines(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every engine (the worker's start-up reconcile of revoker workflows)."""
    return await conn.fetch("SELECT id, tenant_id FROM dynamic_engines ORDER BY id")


async def update_engine(conn: asyncpg.Connection, tenant_id: str, name: str, *, config: dict[str, Any],
                        default_ttl: str, default_ttl_seconds: int, max_ttl: str, max_ttl_seconds: int,
                        connection_status: str, last_error: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE dynamic_engines SET config = $3::jsonb, default_ttl = $4, default_ttl_seconds = $5, max_ttl = $6,"
        " max_ttl_seconds = $7, connection_status = $8, last_error = $9, last_checked_at = now(), updated_at = now()"
        f" WHERE tenant_id = $1 AND name = $2 RETURNING {ENGINE_COLS}", tenant_id, name, _json(config), default_ttl,
        default_ttl_seconds, max_ttl, max_ttl_seconds, connection_status, last_error)


async def set_health(conn: asyncpg.Connection, engine_id: str, status: str, error: str | None) -> str | None:
    """Record a health check; returns the previous status."""
    row = await conn.fetchrow(
        "WITH old AS (SELECT connection_status FROM dynamic_engines WHERE id = $1 FOR UPDATE)"
        " UPDATE dynamic_engines e SET connection_status = $2, last_error = $3, last_checked_at = now()"
        " FROM old WHERE e.id = $1 RETURNING old.connection_status AS previous", engine_id, status, error)
    return None if row is None else row["previous"]  # type: ignore[no-any-return]


async def set_paused(conn: asyncpg.Connection, engine_id: str, paused: bool) -> None:
    await conn.execute("UPDATE dynamic_engines SET revocation_paused = $2, updated_at = now() WHERE id = $1",
                       engine_id, paused)


async def set_wake(conn: asyncpg.Connection, engine_id: str, wake_at: datetime | None) -> None:
    await conn.execute("UPDATE dynamic_engines SET revoker_wake_at = $2 WHERE id = $1", engine_id, wake_at)


async def delete_engine(conn: asyncpg.Connection, tenant_id: str, engine_id: str) -> None:
    await conn.execute("DELETE FROM dynamic_engines WHERE tenant_id = $1 AND id = $2", tenant_id, engine_id)


# --------------------------------------------------------------------------------------------- roles
async def insert_role(conn: asyncpg.Connection, *, id: str, tenant_id: str, engine_id: str, name: str,
                      config: dict[str, Any], default_ttl: str | None, max_ttl: str | None,
                      created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO dynamic_roles (id, tenant_id, engine_id, name, config, default_ttl, max_ttl, created_by)"
        f" VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8) RETURNING {ROLE_COLS}", id, tenant_id, engine_id, name,
        _json(config), default_ttl, max_ttl, created_by)


async def get_role(conn: asyncpg.Connection, tenant_id: str, engine_id: str, name: str, *,
                   for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {ROLE_COLS} FROM dynamic_roles WHERE tenant_id = $1 AND engine_id = $2 AND name = $3{lock}",
        tenant_id, engine_id, name)


_ROLE_ALIASED = ", ".join(f"r.{c} AS r_{c}" for c in ROLE_COLS.split(", "))


async def engine_and_role(conn: asyncpg.Connection, tenant_id: str, engine: str,
                          role: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The engine and one of its roles in one round trip (the issuing path): ``(engine, role)``, either None when
    missing (the role is looked up only under the tenant's engine of that name)."""
    cols = ", ".join(f"e.{c}" for c in ENGINE_COLS.split(", "))
    row = await conn.fetchrow(
        f"SELECT {cols}, {_ROLE_ALIASED} FROM dynamic_engines e LEFT JOIN dynamic_roles r"
        " ON r.tenant_id = e.tenant_id AND r.engine_id = e.id AND r.name = $3"
        " WHERE e.tenant_id = $1 AND e.name = $2", tenant_id, engine, role)
    if row is None:
        return None, None
    eng = {k: row[k] for k in ENGINE_COLS.split(", ")}
    if row["r_id"] is None:
        return eng, None
    return eng, {k: row[f"r_{k}"] for k in ROLE_COLS.split(", ")}


async def list_roles(conn: asyncpg.Connection, tenant_id: str, engine_id: str, *, after: str | None,
                     limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ROLE_COLS} FROM dynamic_roles WHERE tenant_id = $1 AND engine_id = $2"
        " AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4", tenant_id, engine_id, after, limit)


async def update_role(conn: asyncpg.Connection, tenant_id: str, role_id: str, *, config: dict[str, Any],
                      default_ttl: str | None, max_ttl: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE dynamic_roles SET config = $3::jsonb, default_ttl = $4, max_ttl = $5, updated_at = now()"
        f" WHERE tenant_id = $1 AND id = $2 RETURNING {ROLE_COLS}", tenant_id, role_id, _json(config), default_ttl,
        max_ttl)


async def delete_role(conn: asyncpg.Connection, tenant_id: str, role_id: str) -> None:
    await conn.execute("DELETE FROM dynamic_roles WHERE tenant_id = $1 AND id = $2", tenant_id, role_id)


# -------------------------------------------------------------------------------------------- leases
async def insert_lease(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, engine_id: str,
                       engine_name: str, role_name: str, username: str, created_by: str, expires_at: datetime,
                       max_expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO dynamic_leases (id, tenant_id, partner_id, engine_id, engine_name, role_name, username,"
        " created_by, expires_at, max_expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        id, tenant_id, partner_id, engine_id, engine_name, role_name, username, created_by, expires_at,
        max_expires_at)


async def activate_lease(conn: asyncpg.Connection, lease_id: str, external_id: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE dynamic_leases SET status = 'active', external_id = $2 WHERE id = $1 AND status = 'pending'"
        f" RETURNING {LEASE_COLS}", lease_id, external_id)


async def delete_lease(conn: asyncpg.Connection, lease_id: str) -> None:
    await conn.execute("DELETE FROM dynamic_leases WHERE id = $1 AND status = 'pending'", lease_id)


async def abandon_pending(conn: asyncpg.Connection, lease_id: str, *, by: str) -> None:
    """A pending lease whose creation may or may not have committed at the target (the connection failed after
    the statements were sent): the revoker confirms the credential is gone (reason ``issue_failed``)."""
    await conn.execute(
        "UPDATE dynamic_leases SET status = 'revoking', revoke_reason = 'issue_failed', revoke_requested_by = $2,"
        " next_attempt_at = now() WHERE id = $1 AND status = 'pending'", lease_id, by)


async def get_lease(conn: asyncpg.Connection, tenant_id: str, lease_id: str, *,
                    for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {LEASE_COLS} FROM dynamic_leases WHERE tenant_id = $1 AND id = $2{lock}",
                               tenant_id, lease_id)


async def lease_by_id(conn: asyncpg.Connection, lease_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {LEASE_COLS} FROM dynamic_leases WHERE id = $1", lease_id)


async def list_leases(conn: asyncpg.Connection, tenant_id: str, *, engine: str | None, role: str | None,
                      status: str | None, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {LEASE_COLS} FROM dynamic_leases WHERE tenant_id = $1 AND ($2::text IS NULL OR engine_name = $2)"
        " AND ($3::text IS NULL OR role_name = $3) AND ($4::text IS NULL OR status = $4)"
        " AND ($5::text IS NULL OR id > $5) ORDER BY id LIMIT $6", tenant_id, engine, role, status, after, limit)


async def live_count(conn: asyncpg.Connection, engine_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM dynamic_leases WHERE engine_id = $1 AND status <> 'revoked'", engine_id))


async def live_by_engine(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT engine_name, count(*) AS n FROM dynamic_leases WHERE status <> 'revoked'"
                            " GROUP BY engine_name")


async def renew(conn: asyncpg.Connection, lease_id: str, expires_at: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE dynamic_leases SET expires_at = $2, renewed_at = now() WHERE id = $1 RETURNING {LEASE_COLS}",
        lease_id, expires_at)


async def request_revoke(conn: asyncpg.Connection, lease_ids: list[str], *, by: str) -> list[asyncpg.Record]:
    """Make live leases due now (explicit revoke or retry): the revoker picks them up at once."""
    return await conn.fetch(
        "UPDATE dynamic_leases SET revoke_reason = COALESCE(revoke_reason, 'revoked'),"
        " revoke_requested_by = COALESCE(revoke_requested_by, $2), next_attempt_at = now(),"
        " status = CASE WHEN status IN ('pending', 'active') THEN 'revoking' ELSE status END"
        f" WHERE id = ANY($1) AND status <> 'revoked' RETURNING {LEASE_COLS}", lease_ids, by)


async def live_ids_with_prefix(conn: asyncpg.Connection, tenant_id: str, engine: str,
                               role: str | None) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM dynamic_leases WHERE tenant_id = $1 AND engine_name = $2"
        " AND ($3::text IS NULL OR role_name = $3) AND status <> 'revoked' ORDER BY id", tenant_id, engine, role)
    return [r["id"] for r in rows]


async def due(conn: asyncpg.Connection, engine_id: str, limit: int) -> list[asyncpg.Record]:
    """Leases of one engine whose expiry (or retry time) has passed, oldest first."""
    return await conn.fetch(
        f"SELECT {LEASE_COLS} FROM dynamic_leases WHERE engine_id = $1 AND status <> 'revoked'"
        " AND COALESCE(next_attempt_at, expires_at) <= now() ORDER BY COALESCE(next_attempt_at, expires_at)"
        " LIMIT $2", engine_id, limit)


async def next_due(conn: asyncpg.Connection, engine_id: str) -> datetime | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT min(COALESCE(next_attempt_at, expires_at)) FROM dynamic_leases WHERE engine_id = $1"
        " AND status <> 'revoked'", engine_id)


async def mark_revoked(conn: asyncpg.Connection, lease_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE dynamic_leases SET status = 'revoked', revoked_at = now(), revoke_reason = COALESCE(revoke_reason,"
        " 'expired'), next_attempt_at = NULL, last_error = NULL"
        f" WHERE id = ANY($1) AND status <> 'revoked' RETURNING {LEASE_COLS}", lease_ids)


async def mark_failed_attempt(conn: asyncpg.Connection, lease_id: str, *, error: str, next_attempt_at: datetime,
                              failed_after: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE dynamic_leases SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,"
        " status = CASE WHEN attempts + 1 >= $4 THEN 'revocation_failed' ELSE 'revoking' END"
        f" WHERE id = $1 AND status <> 'revoked' RETURNING {LEASE_COLS}", lease_id, error, next_attempt_at,
        failed_after)


async def failing(conn: asyncpg.Connection, engine_id: str, limit: int = 20) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, attempts, last_error, status FROM dynamic_leases WHERE engine_id = $1"
        " AND status IN ('revoking', 'revocation_failed') AND attempts > 0 ORDER BY id LIMIT $2", engine_id, limit)


async def late_engines(conn: asyncpg.Connection, late_seconds: int) -> list[asyncpg.Record]:
    """Engines (not paused) with a lease due for longer than ``late_seconds``: their revoker is not running."""
    return await conn.fetch(
        "SELECT e.id, e.tenant_id FROM dynamic_engines e WHERE NOT e.revocation_paused AND EXISTS (SELECT 1 FROM"
        " dynamic_leases l WHERE l.engine_id = e.id AND l.status <> 'revoked'"
        " AND COALESCE(l.next_attempt_at, l.expires_at) < now() - make_interval(secs => $1))", late_seconds)
