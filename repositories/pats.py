"""SQL for personal access tokens. Every query that lists takes the tenant explicitly."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_COLS = ("id, tenant_id, partner_id, identity_id, identity_type, subject, name, token_prefix, scopes, groups,"
         " roles, created_at, expires_at, last_used_at, revoked_at")


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, identity_id: str,
                 identity_type: str, subject: str, name: str, token_hash: str, token_prefix: str,
                 scopes: list[str], groups: list[str], roles: list[str], expires_at: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO personal_access_tokens (id, tenant_id, partner_id, identity_id, identity_type, subject, name,"
        " token_hash, token_prefix, scopes, groups, roles, expires_at)"
        f" VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING {_COLS}",
        id, tenant_id, partner_id, identity_id, identity_type, subject, name, token_hash, token_prefix,
        scopes, groups, roles, expires_at,
    )


#: ``revoked_by`` of the PATs ScaiKey's ``user.deleted`` revoked (the authenticator names the reason)
REVOKED_BY_USER_DELETED = "scaikey:user.deleted"


async def by_hash(conn: asyncpg.Connection, token_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLS}, revoked_by FROM personal_access_tokens WHERE token_hash = $1",
                               token_hash)


async def get(conn: asyncpg.Connection, tenant_id: str, token_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLS} FROM personal_access_tokens WHERE tenant_id = $1 AND id = $2", tenant_id, token_id
    )


async def list_for(conn: asyncpg.Connection, tenant_id: str, identity_id: str | None, *, after: str | None,
                   limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLS} FROM personal_access_tokens WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR identity_id = $2) AND ($3::text IS NULL OR id > $3)"
        " ORDER BY id LIMIT $4",
        tenant_id, identity_id, after, limit,
    )


async def revoke(conn: asyncpg.Connection, tenant_id: str, token_id: str, by: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE personal_access_tokens SET revoked_at = COALESCE(revoked_at, now()), revoked_by ="
        " COALESCE(revoked_by, $3) WHERE tenant_id = $1 AND id = $2 RETURNING token_hash",
        tenant_id, token_id, by,
    )


async def touch(conn: asyncpg.Connection, token_id: str) -> None:
    await conn.execute("UPDATE personal_access_tokens SET last_used_at = now() WHERE id = $1", token_id)


async def revoke_for_subject(conn: asyncpg.Connection, tenant_id: str, identity_type: str, subject: str,
                             by: str) -> list[str]:
    rows = await conn.fetch(
        "UPDATE personal_access_tokens SET revoked_at = now(), revoked_by = $4 WHERE tenant_id = $1"
        " AND identity_type = $2 AND subject = $3 AND revoked_at IS NULL RETURNING token_hash",
        tenant_id, identity_type, subject, by,
    )
    return [str(r["token_hash"]) for r in rows]
