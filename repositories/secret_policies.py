"""SQL for value-generation (secret) policies. Every query takes the tenant explicitly."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

_COLS = "id, tenant_id, name, policy_type, description, fields, is_active, created_at, updated_at, created_by"


def fields_of(row: asyncpg.Record) -> list[dict[str, Any]]:
    raw = row["fields"]
    return orjson.loads(raw) if isinstance(raw, str | bytes) else list(raw)


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, name: str, policy_type: str,
                 description: str, fields: list[dict[str, Any]], is_active: bool, created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO secret_policies (id, tenant_id, name, policy_type, description, fields, is_active, created_by)"
        f" VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8) RETURNING {_COLS}",
        id, tenant_id, name, policy_type, description, orjson.dumps(fields).decode(), is_active, created_by,
    )


async def get(conn: asyncpg.Connection, tenant_id: str, policy_id: str, *,
              for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLS} FROM secret_policies WHERE tenant_id = $1 AND id = $2{lock}", tenant_id, policy_id
    )


async def list_page(conn: asyncpg.Connection, tenant_id: str, *, include_inactive: bool, after: str | None,
                    limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM secret_policies WHERE tenant_id = $1 AND ($2 OR is_active)"
        " AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4",
        tenant_id, include_inactive, after, limit,
    )


async def update(conn: asyncpg.Connection, tenant_id: str, policy_id: str, *, name: str, policy_type: str,
                 description: str, fields: list[dict[str, Any]], is_active: bool) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE secret_policies SET name = $3, policy_type = $4, description = $5, fields = $6::jsonb,"
        f" is_active = $7, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {_COLS}",
        tenant_id, policy_id, name, policy_type, description, orjson.dumps(fields).decode(), is_active,
    )


async def delete(conn: asyncpg.Connection, tenant_id: str, policy_id: str) -> bool:
    status = await conn.execute("DELETE FROM secret_policies WHERE tenant_id = $1 AND id = $2", tenant_id, policy_id)
    return status.endswith(" 1")
