"""SQL for per-tenant rate-limit overrides."""

from __future__ import annotations

import asyncpg


async def rate_limit_overrides(conn: asyncpg.Connection, tenant_id: str, *, lock: bool = False) -> dict[str, int]:
    """The tenant's overrides; ``lock`` (inside a transaction) holds its rows until commit."""
    sql = "SELECT category, limit_per_minute FROM rate_limit_overrides WHERE tenant_id = $1"
    rows = await conn.fetch(sql + (" FOR UPDATE" if lock else ""), tenant_id)
    return {r["category"]: r["limit_per_minute"] for r in rows}


async def set_rate_limit(conn: asyncpg.Connection, tenant_id: str, category: str, limit: int | None,
                         by: str) -> None:
    if limit is None:
        await conn.execute("DELETE FROM rate_limit_overrides WHERE tenant_id = $1 AND category = $2",
                           tenant_id, category)
        return
    await conn.execute(
        "INSERT INTO rate_limit_overrides (tenant_id, category, limit_per_minute, updated_by)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, category) DO UPDATE SET"
        " limit_per_minute = EXCLUDED.limit_per_minute, updated_by = EXCLUDED.updated_by, updated_at = now()",
        tenant_id, category, limit, by,
    )
