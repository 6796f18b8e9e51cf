"""SQL for the directory mirrored from ScaiKey: partners and tenants (upserts by the sync and the webhook
receiver, the listings behind /v1/identity/partners and /v1/identity/tenants). A tenant whose partner changes
goes through ``repositories.tenants.move_tenant``, which re-wraps its keys in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from repositories.tenants import KeyringSource, move_tenant


async def upsert_partner(conn: asyncpg.Connection, *, id: str, name: str, slug: str | None, region: str | None,
                         status: str, deleted: bool = False) -> None:
    await conn.execute(
        "INSERT INTO partners (id, name, slug, region, status, last_synced_at, deleted_at)"
        " VALUES ($1, $2, $3, $4, $5, now(), CASE WHEN $6 THEN now() END)"
        " ON CONFLICT (id) DO UPDATE SET name = COALESCE(NULLIF(EXCLUDED.name, ''), partners.name),"
        " slug = COALESCE(EXCLUDED.slug, partners.slug),"
        " region = COALESCE(EXCLUDED.region, partners.region), status = EXCLUDED.status,"
        " last_synced_at = now(), deleted_at = CASE WHEN $6 THEN COALESCE(partners.deleted_at, now()) END",
        id, name, slug, region, status, deleted,
    )


async def upsert_tenant(conn: asyncpg.Connection, *, id: str, partner_id: str, name: str, slug: str | None,
                        status: str, keyring: KeyringSource, deleted: bool = False) -> None:
    """Insert or refresh a tenant. A changed partner goes through ``move_tenant`` (re-wraps the tenant's keys under
    the new partner) in the same transaction as the rest of the row; the upsert itself never moves a tenant."""
    async with conn.transaction():  # a savepoint inside the caller's transaction, else its own
        await move_tenant(conn, keyring, id, partner_id)
        await _upsert_tenant_row(conn, id=id, partner_id=partner_id, name=name, slug=slug, status=status,
                                 deleted=deleted)


async def _upsert_tenant_row(conn: asyncpg.Connection, *, id: str, partner_id: str, name: str, slug: str | None,
                             status: str, deleted: bool) -> None:
    await conn.execute("INSERT INTO partners (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", partner_id)
    await conn.execute(
        "INSERT INTO tenants (id, partner_id, name, slug, status, last_synced_at, deleted_at)"
        " VALUES ($1, $2, $3, $4, $5, now(), CASE WHEN $6 THEN now() END)"
        " ON CONFLICT (id) DO UPDATE SET"
        " name = COALESCE(NULLIF(EXCLUDED.name, ''), tenants.name), slug = COALESCE(EXCLUDED.slug, tenants.slug),"
        " status = EXCLUDED.status, last_synced_at = now(),"
        " deleted_at = CASE WHEN $6 THEN COALESCE(tenants.deleted_at, now()) END",
        id, partner_id, name, slug, status, deleted,
    )


async def tenant_slug(conn: asyncpg.Connection, tenant_id: str) -> str | None:
    return await conn.fetchval("SELECT slug FROM tenants WHERE id = $1", tenant_id)  # type: ignore[no-any-return]


async def tenant_partner(conn: asyncpg.Connection, tenant_id: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT partner_id FROM tenants WHERE id = $1", tenant_id)


async def list_partners(conn: asyncpg.Connection, *, partner_ids: Sequence[str] | None, status: str | None,
                        limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    where = "deleted_at IS NULL AND ($1::text[] IS NULL OR id = ANY($1)) AND ($2::text IS NULL OR status = $2)"
    rows = await conn.fetch(
        f"SELECT id, name, slug, region, status, last_synced_at, count(*) OVER () AS total FROM partners"
        f" WHERE {where} ORDER BY id LIMIT $3 OFFSET $4",
        list(partner_ids) if partner_ids is not None else None, status, limit, offset,
    )
    total = rows[0]["total"] if rows else await conn.fetchval(
        f"SELECT count(*) FROM partners WHERE {where}",
        list(partner_ids) if partner_ids is not None else None, status)
    return rows, int(total)


async def list_tenants(conn: asyncpg.Connection, *, partner_id: str | None, tenant_ids: Sequence[str] | None,
                       status: str | None, limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    where = ("deleted_at IS NULL AND ($1::text IS NULL OR partner_id = $1)"
             " AND ($2::text[] IS NULL OR id = ANY($2)) AND ($3::text IS NULL OR status = $3)")
    args = (partner_id, list(tenant_ids) if tenant_ids is not None else None, status)
    rows = await conn.fetch(
        f"SELECT id, partner_id, name, slug, status, last_synced_at, count(*) OVER () AS total FROM tenants"
        f" WHERE {where} ORDER BY id LIMIT $4 OFFSET $5", *args, limit, offset)
    total = rows[0]["total"] if rows else await conn.fetchval(f"SELECT count(*) FROM tenants WHERE {where}", *args)
    return rows, int(total)
