"""All SQL for secrets and their versions. Every statement is scoped by the owner: ``(scope, owner_id)``
where scope='tenant' means owner_id is the tenant id and scope='partner' the partner id (see
:class:`Owner`). Queries take the owner explicitly; nothing reads across owners except the sweeper.

Reads are single statements on an asyncpg connection (prepared and cached by asyncpg). Writes run inside
the caller's transaction (``conn`` is inside ``async with conn.transaction()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

Scope = Literal["tenant", "partner"]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns a secret: a tenant (``tenant_id`` set) or a partner (partner-wide secret)."""

    scope: Scope
    owner_id: str
    partner_id: str

    @property
    def tenant_id(self) -> str | None:
        return self.owner_id if self.scope == "tenant" else None

    @classmethod
    def tenant(cls, tenant_id: str, partner_id: str) -> Owner:
        return cls("tenant", tenant_id, partner_id)

    @classmethod
    def partner(cls, partner_id: str) -> Owner:
        return cls("partner", partner_id, partner_id)


# -------------------------------------------------------------------------------------------- reads

_READ_COLS = (
    "s.id, s.path, s.secret_type, s.current_version, s.metadata::text AS metadata, s.created_at, s.updated_at,"
    " s.rotation_policy_id, s.deleted_at, v.version, v.ciphertext, v.expires_at AS version_expires_at,"
    " v.destroyed_at"
)
READ_ONE = (
    f"SELECT {_READ_COLS} FROM secrets s LEFT JOIN secret_versions v"
    " ON v.secret_id = s.id AND v.version = COALESCE($4::int, s.current_version)"
    " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path = $3"
)
READ_MANY = (
    f"SELECT {_READ_COLS} FROM secrets s LEFT JOIN secret_versions v"
    " ON v.secret_id = s.id AND v.version = COALESCE($4::int, s.current_version)"
    " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path = ANY($3::text[])"
)


async def read(conn: asyncpg.Connection, owner: Owner, path: str, version: int | None) -> asyncpg.Record | None:
    """The secret row joined with the wanted version (latest when ``version`` is None): one round trip."""
    return await conn.fetchrow(READ_ONE, owner.scope, owner.owner_id, path, version)


async def read_many(conn: asyncpg.Connection, owner: Owner, paths: list[str],
                    version: int | None) -> list[asyncpg.Record]:
    return await conn.fetch(READ_MANY, owner.scope, owner.owner_id, paths, version)


_META_COLS = (
    "s.id, s.path, s.secret_type, s.current_version, s.metadata::text AS metadata, s.max_versions, s.expires_at,"
    " s.rotation_policy_id, s.secret_policy_id, s.notify_before, s.created_at, s.created_by, s.updated_at,"
    " s.updated_by, s.last_accessed_at, s.deleted_at, s.deleted_by, s.recoverable_until"
)
_VERSION_COUNT = "(SELECT count(*) FROM secret_versions c WHERE c.secret_id = s.id)::int AS version_count"


async def metadata(conn: asyncpg.Connection, owner: Owner, path: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_META_COLS}, {_VERSION_COUNT} FROM secrets s"
        " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path = $3",
        owner.scope, owner.owner_id, path,
    )


async def metadata_many(conn: asyncpg.Connection, owner: Owner, paths: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_META_COLS}, {_VERSION_COUNT} FROM secrets s"
        " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path = ANY($3::text[]) AND s.deleted_at IS NULL",
        owner.scope, owner.owner_id, paths,
    )


async def versions(conn: asyncpg.Connection, secret_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, created_at, created_by, expires_at, destroyed_at FROM secret_versions"
        " WHERE secret_id = $1 ORDER BY version",
        secret_id,
    )


def prefix_upper(prefix: str) -> str:
    """Exclusive upper bound of paths starting with ``prefix`` ('~' sorts after every legal path byte)."""
    return prefix + "~"


async def list_page(
    conn: asyncpg.Connection, owner: Owner, *, prefix: str, after: str | None, tags: list[str] | None,
    expiring_before: datetime | None, include_deleted: bool, limit: int,
) -> list[asyncpg.Record]:
    """Secrets whose path starts with ``prefix``, after ``after``, in path (byte) order."""
    return await conn.fetch(
        f"SELECT {_META_COLS}, {_VERSION_COUNT} FROM secrets s"
        " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path >= $3 AND s.path < $4"
        " AND ($5::text IS NULL OR s.path > $5)"
        " AND ($6::text[] IS NULL OR (s.metadata -> 'tags') ?& $6::text[])"
        " AND ($7::timestamptz IS NULL OR (s.expires_at IS NOT NULL AND s.expires_at <= $7))"
        " AND ($8 OR s.deleted_at IS NULL)"
        " ORDER BY s.path LIMIT $9",
        owner.scope, owner.owner_id, prefix, prefix_upper(prefix), after, tags, expiring_before,
        include_deleted, limit,
    )


async def paths_under(conn: asyncpg.Connection, owner: Owner, prefix: str, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT path FROM secrets WHERE scope = $1 AND owner_id = $2 AND path >= $3 AND path < $4"
        " AND deleted_at IS NULL ORDER BY path LIMIT $5",
        owner.scope, owner.owner_id, prefix, prefix_upper(prefix), limit,
    )
    return [r["path"] for r in rows]


# ------------------------------------------------------------------------------------------- writes


async def lock(conn: asyncpg.Connection, owner: Owner, path: str) -> asyncpg.Record | None:
    """The secret row, locked for the rest of the transaction (serialises writers of one path)."""
    return await conn.fetchrow(
        f"SELECT {_META_COLS}, {_VERSION_COUNT} FROM secrets s"
        " WHERE s.scope = $1 AND s.owner_id = $2 AND s.path = $3 FOR UPDATE OF s",
        owner.scope, owner.owner_id, path,
    )


@dataclass(slots=True)
class NewSecret:
    secret_type: str
    metadata_json: str
    max_versions: int | None
    expires_at: datetime | None
    rotation_policy_id: str | None
    secret_policy_id: str | None
    notify_before: str | None
    actor: str


async def create(conn: asyncpg.Connection, owner: Owner, path: str, s: NewSecret,
                 ciphertext: bytes) -> asyncpg.Record | None:
    """Insert the secret with version 1. None when a concurrent writer created the path first."""
    return await conn.fetchrow(
        "WITH s AS ("
        " INSERT INTO secrets (scope, owner_id, tenant_id, partner_id, path, secret_type, metadata,"
        " current_version, max_versions, expires_at, rotation_policy_id, secret_policy_id, notify_before,"
        " created_by, updated_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, 1, $8, $9, $10, $11, $12, $13, $13)"
        " ON CONFLICT (scope, owner_id, path) DO NOTHING RETURNING id, created_at, updated_at),"
        " v AS (INSERT INTO secret_versions (secret_id, version, ciphertext, created_by, expires_at, created_at)"
        " SELECT id, 1, $14, $13, $9, created_at FROM s)"
        " SELECT id, created_at, updated_at FROM s",
        owner.scope, owner.owner_id, owner.tenant_id, owner.partner_id, path, s.secret_type, s.metadata_json,
        s.max_versions, s.expires_at, s.rotation_policy_id, s.secret_policy_id, s.notify_before, s.actor,
        ciphertext,
    )


async def append_version(conn: asyncpg.Connection, secret_id: int, version: int, s: NewSecret,
                         ciphertext: bytes) -> asyncpg.Record:
    """Add ``version`` (row locked by :func:`lock`), update the secret, prune beyond ``max_versions``."""
    return await conn.fetchrow(
        "WITH v AS (INSERT INTO secret_versions (secret_id, version, ciphertext, created_by, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)),"
        " p AS (DELETE FROM secret_versions WHERE secret_id = $1 AND $6::int IS NOT NULL"
        " AND version <= $2 - $6 RETURNING version)"
        " UPDATE secrets SET current_version = $2, secret_type = $7, metadata = $8::jsonb, max_versions = $6,"
        " expires_at = $5, rotation_policy_id = $9, secret_policy_id = $10, notify_before = $11,"
        " updated_at = now(), updated_by = $4"
        " WHERE id = $1 RETURNING created_at, updated_at, (SELECT count(*) FROM p)::int AS pruned",
        secret_id, version, ciphertext, s.actor, s.expires_at, s.max_versions, s.secret_type, s.metadata_json,
        s.rotation_policy_id, s.secret_policy_id, s.notify_before,
    )


async def update_settings(conn: asyncpg.Connection, secret_id: int, s: NewSecret) -> int:
    """Metadata/options change without a new version (PATCH); prunes if max_versions shrank.
    Returns how many versions were pruned."""
    row = await conn.fetchrow(
        "WITH p AS (DELETE FROM secret_versions WHERE secret_id = $1 AND $3::int IS NOT NULL"
        " AND version <= (SELECT current_version FROM secrets WHERE id = $1) - $3 RETURNING version)"
        " UPDATE secrets SET metadata = $2::jsonb, max_versions = $3, expires_at = $4, rotation_policy_id = $5,"
        " secret_policy_id = $6, notify_before = $7, updated_at = now(), updated_by = $8 WHERE id = $1"
        " RETURNING (SELECT count(*) FROM p)::int AS pruned",
        secret_id, s.metadata_json, s.max_versions, s.expires_at, s.rotation_policy_id, s.secret_policy_id,
        s.notify_before, s.actor,
    )
    return int(row["pruned"]) if row else 0


async def set_version_expiry(conn: asyncpg.Connection, secret_id: int, version: int,
                             expires_at: datetime | None) -> None:
    await conn.execute("UPDATE secret_versions SET expires_at = $3 WHERE secret_id = $1 AND version = $2",
                       secret_id, version, expires_at)


async def purge(conn: asyncpg.Connection, secret_id: int) -> None:
    await conn.execute("DELETE FROM secrets WHERE id = $1", secret_id)


async def soft_delete(conn: asyncpg.Connection, secret_id: int, actor: str, retention: timedelta) -> datetime:
    row = await conn.fetchrow(
        "UPDATE secrets SET deleted_at = now(), deleted_by = $2, recoverable_until = now() + $3"
        " WHERE id = $1 RETURNING recoverable_until",
        secret_id, actor, retention,
    )
    return row["recoverable_until"]  # type: ignore[index,no-any-return]


async def restore(conn: asyncpg.Connection, secret_id: int, actor: str) -> None:
    await conn.execute(
        "UPDATE secrets SET deleted_at = NULL, deleted_by = NULL, recoverable_until = NULL, updated_at = now(),"
        " updated_by = $2 WHERE id = $1",
        secret_id, actor,
    )


async def existing_versions(conn: asyncpg.Connection, secret_id: int, wanted: list[int]) -> set[int]:
    rows = await conn.fetch(
        "SELECT version FROM secret_versions WHERE secret_id = $1 AND version = ANY($2::int[])", secret_id, wanted
    )
    return {r["version"] for r in rows}


async def destroy_versions(conn: asyncpg.Connection, secret_id: int, wanted: list[int], actor: str) -> list[int]:
    rows = await conn.fetch(
        "UPDATE secret_versions SET ciphertext = NULL, destroyed_at = now(), destroyed_by = $3"
        " WHERE secret_id = $1 AND version = ANY($2::int[]) AND destroyed_at IS NULL RETURNING version",
        secret_id, wanted, actor,
    )
    return sorted(r["version"] for r in rows)


# ------------------------------------------------------------------------------------- background


async def touch_accessed(conn: asyncpg.Connection, ids: list[int], epoch_seconds: list[float]) -> None:
    """Batched ``last_accessed_at`` update (never on the read path)."""
    await conn.execute(
        "UPDATE secrets s SET last_accessed_at = to_timestamp(x.t)"
        " FROM unnest($1::bigint[], $2::float8[]) AS x(id, t)"
        " WHERE s.id = x.id AND (s.last_accessed_at IS NULL OR s.last_accessed_at < to_timestamp(x.t))",
        ids, epoch_seconds,
    )


async def purge_expired_deleted(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Hard-delete soft-deleted secrets whose recovery window has passed (housekeeping sweeper); returns
    (scope, owner_id, tenant_id, path) of each purged secret."""
    return await conn.fetch(
        "DELETE FROM secrets WHERE id IN (SELECT id FROM secrets WHERE deleted_at IS NOT NULL"
        " AND recoverable_until < now() ORDER BY recoverable_until LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING scope, owner_id, tenant_id, path",
        limit,
    )
