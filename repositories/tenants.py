"""SQL for the partner/tenant identity-cache roots."""

from __future__ import annotations

import asyncpg


async def get_tenant(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, partner_id, name, slug, status, deleted_at FROM tenants WHERE id = $1", tenant_id
    )


async def ensure_tenant(conn: asyncpg.Connection, tenant_id: str, partner_id: str) -> asyncpg.Record:
    """Record a tenant first seen on a verified token; never overwrites what sync stored."""
    await conn.execute(
        "INSERT INTO partners (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", partner_id
    )
    await conn.execute(
        "INSERT INTO tenants (id, partner_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", tenant_id, partner_id
    )
    row = await get_tenant(conn, tenant_id)
    assert row is not None
    return row
