"""SQL for federated backends, the per-path sync ledger and conflicts. Every tenant-owned query takes the tenant."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

_COLS = ("id, tenant_id, partner_id, name, type, mode, config, path_mapping, sync_interval, sync_interval_seconds,"
         " health, last_sync_at, last_success_at, last_sync_duration_ms, secrets_synced, last_counts, last_error,"
         " created_by, created_at, updated_at")
_CCOLS = ("id, tenant_id, backend_id, path, backend_path, local_version, remote_version_id, detected_at, resolution,"
          " resolved_at, resolved_by")
UPDATABLE = frozenset({"name", "mode", "config", "path_mapping", "sync_interval", "sync_interval_seconds"})
_JSONB = frozenset({"config", "path_mapping", "last_counts"})


def _j(value: Any) -> str:
    return orjson.dumps(value).decode()


def jsonb(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


# ------------------------------------------------------------------------------------------------ backends
async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, name: str,
                 type: str, mode: str, config: dict[str, Any], path_mapping: dict[str, str],
                 sync_interval: str | None, sync_interval_seconds: int | None,
                 created_by: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "INSERT INTO federation_backends (id, tenant_id, partner_id, name, type, mode, config, path_mapping,"
        " sync_interval, sync_interval_seconds, created_by) VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8::jsonb,$9,$10,$11)"
        f" ON CONFLICT (tenant_id, name) DO NOTHING RETURNING {_COLS}",
        id, tenant_id, partner_id, name, type, mode, _j(config), _j(path_mapping), sync_interval,
        sync_interval_seconds, created_by)


async def get(conn: asyncpg.Connection, tenant_id: str, backend_id: str, *,
              for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_COLS} FROM federation_backends WHERE tenant_id = $1 AND id = $2{lock}",
                               tenant_id, backend_id)


async def list_for(conn: asyncpg.Connection, tenant_id: str, *, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM federation_backends WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2)"
        " ORDER BY id LIMIT $3", tenant_id, after, limit)


async def all_for(conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_COLS} FROM federation_backends WHERE tenant_id = $1 ORDER BY id", tenant_id)


async def update(conn: asyncpg.Connection, tenant_id: str, backend_id: str,
                 changes: dict[str, Any]) -> asyncpg.Record | None:
    bad = set(changes) - UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    sets, args = [], [tenant_id, backend_id]
    for col, value in changes.items():
        args.append(_j(value) if col in _JSONB else value)
        sets.append(f"{col} = ${len(args)}" + ("::jsonb" if col in _JSONB else ""))
    sets.append("updated_at = now()")
    return await conn.fetchrow(
        f"UPDATE federation_backends SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {_COLS}",
        *args)


async def delete(conn: asyncpg.Connection, tenant_id: str, backend_id: str) -> bool:
    status = await conn.execute("DELETE FROM federation_backends WHERE tenant_id = $1 AND id = $2",
                                tenant_id, backend_id)
    return status.endswith(" 1")


async def record_run(conn: asyncpg.Connection, backend_id: str, *, ok: bool, duration_ms: int,
                     counts: dict[str, int], error: str | None, health: str) -> None:
    await conn.execute(
        "UPDATE federation_backends SET health = $2, last_sync_at = now(), last_sync_duration_ms = $3,"
        " last_counts = $4::jsonb, last_error = $5,"
        " last_success_at = CASE WHEN $6 THEN now() ELSE last_success_at END,"
        " secrets_synced = CASE WHEN $6 THEN (SELECT count(*) FROM federation_items i WHERE i.backend_id = $1"
        "   AND NOT i.remote_deleted) ELSE secrets_synced END"
        " WHERE id = $1", backend_id, health, duration_ms, _j(counts), error, ok)


# ------------------------------------------------------------------------------------------------ ledger
async def items(conn: asyncpg.Connection, backend_id: str) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT path, remote_path, remote_version, local_version, remote_deleted"
                            " FROM federation_items WHERE backend_id = $1", backend_id)
    return {r["path"]: r for r in rows}


async def item(conn: asyncpg.Connection, backend_id: str, path: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT path, remote_path, remote_version, local_version, remote_deleted"
                               " FROM federation_items WHERE backend_id = $1 AND path = $2", backend_id, path)


async def put_item(conn: asyncpg.Connection, backend_id: str, path: str, remote_path: str,
                   remote_version: str | None, local_version: int | None, *, remote_deleted: bool = False) -> None:
    await conn.execute(
        "INSERT INTO federation_items (backend_id, path, remote_path, remote_version, local_version, remote_deleted)"
        " VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (backend_id, path) DO UPDATE SET remote_path = EXCLUDED.remote_path,"
        " remote_version = EXCLUDED.remote_version, local_version = EXCLUDED.local_version,"
        " remote_deleted = EXCLUDED.remote_deleted, synced_at = now()",
        backend_id, path, remote_path, remote_version, local_version, remote_deleted)


# ------------------------------------------------------------------------------------------------ conflicts
async def open_conflicts(conn: asyncpg.Connection, backend_id: str) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(f"SELECT {_CCOLS} FROM federation_conflicts WHERE backend_id = $1"
                            " AND resolution IS NULL", backend_id)
    return {r["path"]: r for r in rows}


async def upsert_conflict(conn: asyncpg.Connection, *, id: str, tenant_id: str, backend_id: str, path: str,
                          backend_path: str, local_version: int | None, remote_version_id: str | None) -> bool:
    """Record an open conflict (True when it is new); an open one gets the latest versions."""
    row = await conn.fetchrow(
        "INSERT INTO federation_conflicts (id, tenant_id, backend_id, path, backend_path, local_version,"
        " remote_version_id) VALUES ($1,$2,$3,$4,$5,$6,$7)"
        " ON CONFLICT (backend_id, path) WHERE resolution IS NULL DO UPDATE SET"
        " local_version = EXCLUDED.local_version, remote_version_id = EXCLUDED.remote_version_id"
        " RETURNING (xmax = 0) AS inserted",
        id, tenant_id, backend_id, path, backend_path, local_version, remote_version_id)
    return bool(row["inserted"])


async def list_conflicts(conn: asyncpg.Connection, tenant_id: str, backend_id: str, *, include_resolved: bool,
                         after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_CCOLS} FROM federation_conflicts WHERE tenant_id = $1 AND backend_id = $2"
        " AND ($3 OR resolution IS NULL) AND ($4::text IS NULL OR id > $4) ORDER BY id LIMIT $5",
        tenant_id, backend_id, include_resolved, after, limit)


async def get_conflict(conn: asyncpg.Connection, tenant_id: str, backend_id: str, conflict_id: str, *,
                       for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_CCOLS} FROM federation_conflicts WHERE tenant_id = $1 AND backend_id = $2"
                               f" AND id = $3{lock}", tenant_id, backend_id, conflict_id)


async def resolve_conflict(conn: asyncpg.Connection, conflict_id: str, resolution: str,
                           resolved_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE federation_conflicts SET resolution = $2, resolved_at = now(), resolved_by = $3 WHERE id = $1"
        f" RETURNING {_CCOLS}", conflict_id, resolution, resolved_by)


async def mapped_proxies(conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name, type, mode, path_mapping, updated_at FROM federation_backends"
                            " WHERE tenant_id = $1", tenant_id)
