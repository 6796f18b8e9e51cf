"""SQL for PKI roles (``pki_roles``); the role's knobs live in one JSONB ``config`` column."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

COLS = "id, tenant_id, name, ca_id, config, created_at, updated_at, created_by"


def config_of(row: asyncpg.Record) -> dict[str, Any]:
    raw = row["config"]
    return orjson.loads(raw) if isinstance(raw, str | bytes) else dict(raw)


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, name: str, ca_id: str, config: dict[str, Any],
                 created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO pki_roles (id, tenant_id, name, ca_id, config, created_by) VALUES ($1,$2,$3,$4,$5::jsonb,$6)"
        f" RETURNING {COLS}", id, tenant_id, name, ca_id, orjson.dumps(config).decode(), created_by)


async def get(conn: asyncpg.Connection, tenant_id: str, name: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {COLS} FROM pki_roles WHERE tenant_id = $1 AND name = $2{lock}",
                               tenant_id, name)


async def list_page(conn: asyncpg.Connection, tenant_id: str, *, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLS} FROM pki_roles WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
        tenant_id, after, limit)


async def update(conn: asyncpg.Connection, tenant_id: str, name: str, *, ca_id: str,
                 config: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE pki_roles SET ca_id = $3, config = $4::jsonb, updated_at = now() WHERE tenant_id = $1 AND name = $2"
        f" RETURNING {COLS}", tenant_id, name, ca_id, orjson.dumps(config).decode())


async def delete(conn: asyncpg.Connection, tenant_id: str, name: str) -> bool:
    status = await conn.execute("DELETE FROM pki_roles WHERE tenant_id = $1 AND name = $2", tenant_id, name)
    return status.endswith(" 1")
