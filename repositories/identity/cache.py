"""SQL for the identity cache mirrored from ScaiKey: users, groups and memberships (bulk reconcile, webhook
upserts and soft deletes, reads). Every statement takes ``tenant_id`` first and filters by it.

Bulk reconciliation passes whole columns as arrays (``unnest``), so a 10,000-user sync is a handful of round
trips, not 10,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


# --------------------------------------------------------------------------------------------- rows in
@dataclass(frozen=True, slots=True)
class UserIn:
    id: str
    email: str
    display_name: str
    status: str
    mfa_enabled: bool | None


@dataclass(frozen=True, slots=True)
class GroupIn:
    id: str
    name: str
    group_type: str
    description: str


@dataclass(frozen=True, slots=True)
class MembershipIn:
    group_id: str
    member_type: str  # user | group
    member_id: str
    membership_type: str  # DIRECT | NESTED
    via_group_id: str | None = None


def _count(status: str) -> int:
    return int(status.split()[-1])


# --------------------------------------------------------------------------------------------- bulk reconcile
async def reconcile_users(conn: asyncpg.Connection, tenant_id: str, users: Sequence[UserIn]) -> tuple[int, int]:
    """Upsert ``users`` (reviving soft-deleted ones). ``mfa_enabled`` None keeps the stored value (a member
    listing does not say). Returns (added, undeleted)."""
    row = await conn.fetchrow(
        """
        WITH incoming AS (
            SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
                AS t(id, email, display_name, status, mfa_enabled)
        ), prev AS (
            SELECT u.id, u.deleted_at FROM identity_users u JOIN incoming i ON i.id = u.id WHERE u.tenant_id = $1
        ), ins AS (
            INSERT INTO identity_users (tenant_id, id, email, display_name, status, mfa_enabled, last_synced_at)
            SELECT $1, i.id, i.email, i.display_name, i.status, COALESCE(i.mfa_enabled, false), now()
            FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM prev p WHERE p.id = i.id)
            ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id
        ), upd AS (
            UPDATE identity_users u SET email = i.email, display_name = i.display_name, status = i.status,
                mfa_enabled = COALESCE(i.mfa_enabled, u.mfa_enabled), deleted_at = NULL, last_synced_at = now(),
                updated_at = CASE WHEN (u.email, u.display_name, u.status, u.deleted_at IS NULL)
                    IS DISTINCT FROM (i.email, i.display_name, i.status, true) THEN now() ELSE u.updated_at END
            FROM incoming i WHERE u.tenant_id = $1 AND u.id = i.id RETURNING u.id
        )
        SELECT (SELECT count(*) FROM ins) AS added,
               (SELECT count(*) FROM prev WHERE deleted_at IS NOT NULL) AS undeleted,
               (SELECT count(*) FROM upd) AS updated
        """,
        tenant_id, [u.id for u in users], [u.email for u in users], [u.display_name for u in users],
        [u.status for u in users], [u.mfa_enabled for u in users],
    )
    assert row is not None
    return int(row["added"]), int(row["undeleted"])


async def live_count(conn: asyncpg.Connection, tenant_id: str, table: str) -> int:
    assert table in {"identity_users", "identity_groups"}
    return int(await conn.fetchval(
        f"SELECT count(*) FROM {table} WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id))


async def soft_delete_users_except(conn: asyncpg.Connection, tenant_id: str, keep: Sequence[str]) -> int:
    return _count(await conn.execute(
        "UPDATE identity_users SET deleted_at = now(), updated_at = now()"
        " WHERE tenant_id = $1 AND deleted_at IS NULL AND NOT (id = ANY($2::text[]))", tenant_id, list(keep)))


async def reconcile_groups(conn: asyncpg.Connection, tenant_id: str,
                           groups: Sequence[GroupIn]) -> tuple[int, int]:
    row = await conn.fetchrow(
        """
        WITH incoming AS (
            SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
                AS t(id, name, group_type, description)
        ), prev AS (
            SELECT g.id, g.deleted_at FROM identity_groups g JOIN incoming i ON i.id = g.id WHERE g.tenant_id = $1
        ), up AS (
            INSERT INTO identity_groups AS g (tenant_id, id, name, group_type, description, last_synced_at)
            SELECT $1, id, name, group_type, description, now() FROM incoming
            ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, group_type = EXCLUDED.group_type,
                description = EXCLUDED.description, deleted_at = NULL, last_synced_at = now()
            RETURNING g.id
        )
        SELECT count(*) FILTER (WHERE p.id IS NULL) AS added,
               count(*) FILTER (WHERE p.deleted_at IS NOT NULL) AS undeleted
        FROM up LEFT JOIN prev p ON p.id = up.id
        """,
        tenant_id, [g.id for g in groups], [g.name for g in groups], [g.group_type for g in groups],
        [g.description for g in groups],
    )
    assert row is not None
    return int(row["added"]), int(row["undeleted"])


async def soft_delete_groups_except(conn: asyncpg.Connection, tenant_id: str, keep: Sequence[str]) -> int:
    return _count(await conn.execute(
        "UPDATE identity_groups SET deleted_at = now(), updated_at = now()"
        " WHERE tenant_id = $1 AND deleted_at IS NULL AND NOT (id = ANY($2::text[]))", tenant_id, list(keep)))


async def reconcile_memberships(conn: asyncpg.Connection, tenant_id: str,
                                rows: Sequence[MembershipIn]) -> tuple[int, int]:
    """Upsert memberships and soft-delete the ones not in ``rows``. Returns (added_or_revived, soft_deleted)."""
    added = await conn.fetchval(
        """
        WITH incoming AS (
            SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS t(group_id, member_type, member_id, membership_type, via_group_id)
        ), prev AS (
            SELECT m.group_id, m.member_type, m.member_id, m.deleted_at FROM identity_memberships m
            JOIN incoming i USING (group_id, member_type, member_id) WHERE m.tenant_id = $1
        ), up AS (
            INSERT INTO identity_memberships AS m (tenant_id, group_id, member_type, member_id, membership_type,
                                                   via_group_id, last_synced_at)
            SELECT $1, group_id, member_type, member_id, membership_type, via_group_id, now() FROM incoming
            ON CONFLICT (tenant_id, group_id, member_type, member_id) DO UPDATE SET
                membership_type = EXCLUDED.membership_type, via_group_id = EXCLUDED.via_group_id,
                deleted_at = NULL, last_synced_at = now(),
                added_at = CASE WHEN m.deleted_at IS NOT NULL THEN now() ELSE m.added_at END
            RETURNING m.group_id, m.member_type, m.member_id
        )
        SELECT count(*) FROM up LEFT JOIN prev p USING (group_id, member_type, member_id)
        WHERE p.group_id IS NULL OR p.deleted_at IS NOT NULL
        """,
        tenant_id, [r.group_id for r in rows], [r.member_type for r in rows], [r.member_id for r in rows],
        [r.membership_type for r in rows], [r.via_group_id for r in rows],
    )
    removed = _count(await conn.execute(
        """
        UPDATE identity_memberships m SET deleted_at = now()
        WHERE m.tenant_id = $1 AND m.deleted_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM unnest($2::text[], $3::text[], $4::text[]) AS t(group_id, member_type, member_id)
            WHERE t.group_id = m.group_id AND t.member_type = m.member_type AND t.member_id = m.member_id)
        """,
        tenant_id, [r.group_id for r in rows], [r.member_type for r in rows], [r.member_id for r in rows],
    ))
    return int(added or 0), removed


# --------------------------------------------------------------------------------------------- single-row ops
async def upsert_user(conn: asyncpg.Connection, tenant_id: str, *, id: str, email: str | None,
                      display_name: str | None, status: str | None, mfa_enabled: bool | None,
                      revive: bool) -> None:
    """Webhook upsert: unknown fields keep their stored value; ``revive`` clears a soft delete."""
    await conn.execute(
        "INSERT INTO identity_users AS u (tenant_id, id, email, display_name, status, mfa_enabled, last_synced_at)"
        " VALUES ($1, $2, COALESCE($3, ''), COALESCE($4, ''), COALESCE($5, 'ACTIVE'), COALESCE($6, false), now())"
        " ON CONFLICT (tenant_id, id) DO UPDATE SET email = COALESCE($3, u.email),"
        " display_name = COALESCE($4, u.display_name),"
        " status = COALESCE($5, CASE WHEN $7 AND u.status = 'DELETED' THEN 'ACTIVE' ELSE u.status END),"
        " mfa_enabled = COALESCE($6, u.mfa_enabled), updated_at = now(), last_synced_at = now(),"
        " deleted_at = CASE WHEN $7 THEN NULL ELSE u.deleted_at END",
        tenant_id, id, email, display_name, status, mfa_enabled, revive)


async def soft_delete_user(conn: asyncpg.Connection, tenant_id: str, user_id: str) -> bool:
    """ScaiKey says the user is deleted (webhook): status DELETED marks it as authoritative, unlike a sync's
    soft delete of a user it merely did not see; the principal enricher refuses every token of such a user."""
    n = _count(await conn.execute(
        "UPDATE identity_users SET deleted_at = now(), updated_at = now(), status = 'DELETED'"
        " WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", tenant_id, user_id))
    await conn.execute(
        "UPDATE identity_memberships SET deleted_at = now() WHERE tenant_id = $1 AND member_type = 'user'"
        " AND member_id = $2 AND deleted_at IS NULL", tenant_id, user_id)
    return n == 1


async def upsert_group(conn: asyncpg.Connection, tenant_id: str, *, id: str, name: str | None,
                       group_type: str | None, description: str | None) -> None:
    await conn.execute(
        "INSERT INTO identity_groups AS g (tenant_id, id, name, group_type, description, last_synced_at)"
        " VALUES ($1, $2, COALESCE($3, $2), COALESCE($4, 'SECURITY'), COALESCE($5, ''), now())"
        " ON CONFLICT (tenant_id, id) DO UPDATE SET name = COALESCE($3, g.name),"
        " group_type = COALESCE($4, g.group_type), description = COALESCE($5, g.description),"
        " deleted_at = NULL, updated_at = now(), last_synced_at = now()",
        tenant_id, id, name, group_type, description)


async def soft_delete_group(conn: asyncpg.Connection, tenant_id: str, group_id: str) -> bool:
    n = _count(await conn.execute(
        "UPDATE identity_groups SET deleted_at = now(), updated_at = now()"
        " WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL", tenant_id, group_id))
    await conn.execute(
        "UPDATE identity_memberships SET deleted_at = now() WHERE tenant_id = $1 AND deleted_at IS NULL"
        " AND (group_id = $2 OR (member_type = 'group' AND member_id = $2))", tenant_id, group_id)
    return n == 1


async def upsert_membership(conn: asyncpg.Connection, tenant_id: str, *, group_id: str, member_type: str,
                            member_id: str, membership_type: str = "DIRECT") -> None:
    await conn.execute(
        "INSERT INTO identity_memberships AS m (tenant_id, group_id, member_type, member_id, membership_type,"
        " last_synced_at) VALUES ($1, $2, $3, $4, $5, now())"
        " ON CONFLICT (tenant_id, group_id, member_type, member_id) DO UPDATE SET"
        " membership_type = CASE WHEN m.deleted_at IS NULL AND m.membership_type = 'DIRECT' THEN 'DIRECT'"
        " ELSE EXCLUDED.membership_type END,"
        " added_at = CASE WHEN m.deleted_at IS NOT NULL THEN now() ELSE m.added_at END,"
        " deleted_at = NULL, last_synced_at = now()",
        tenant_id, group_id, member_type, member_id, membership_type)


async def soft_delete_membership(conn: asyncpg.Connection, tenant_id: str, *, group_id: str, member_type: str,
                                 member_id: str) -> bool:
    return _count(await conn.execute(
        "UPDATE identity_memberships SET deleted_at = now() WHERE tenant_id = $1 AND group_id = $2"
        " AND member_type = $3 AND member_id = $4 AND deleted_at IS NULL",
        tenant_id, group_id, member_type, member_id)) == 1


async def ancestor_groups(conn: asyncpg.Connection, tenant_id: str, group_id: str) -> list[str]:
    """Groups that contain ``group_id`` directly or transitively (live nesting edges)."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE up(id) AS (
            SELECT group_id FROM identity_memberships
            WHERE tenant_id = $1 AND member_type = 'group' AND member_id = $2 AND deleted_at IS NULL
            UNION
            SELECT m.group_id FROM identity_memberships m JOIN up ON m.member_id = up.id
            WHERE m.tenant_id = $1 AND m.member_type = 'group' AND m.deleted_at IS NULL
        ) SELECT id FROM up
        """, tenant_id, group_id)
    return [r["id"] for r in rows]


async def user_exists(conn: asyncpg.Connection, tenant_id: str, user_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM identity_users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        tenant_id, user_id))


# --------------------------------------------------------------------------------------------- reads
_USER_GROUPS = """
    COALESCE((SELECT array_agg(DISTINCT m.group_id ORDER BY m.group_id) FROM identity_memberships m
              JOIN identity_groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id AND g.deleted_at IS NULL
              WHERE m.tenant_id = u.tenant_id AND m.member_type = 'user' AND m.member_id = u.id
                AND m.deleted_at IS NULL), '{}') AS groups
"""


async def list_users(conn: asyncpg.Connection, tenant_id: str, *, status: str | None, q: str | None,
                     limit: int, offset: int) -> tuple[list[asyncpg.Record], int]:
    """``status`` ACTIVE | SUSPENDED | DELETED (soft-deleted rows) | None (every live row)."""
    where = ("u.tenant_id = $1 AND CASE WHEN $2::text = 'DELETED' THEN u.deleted_at IS NOT NULL"
             " ELSE u.deleted_at IS NULL AND ($2::text IS NULL OR u.status = $2) END"
             " AND ($3::text IS NULL OR u.email ILIKE '%' || $3 || '%' OR u.display_name ILIKE '%' || $3 || '%')")
    rows = await conn.fetch(
        f"SELECT u.*, {_USER_GROUPS}, count(*) OVER () AS total FROM identity_users u WHERE {where}"
        f" ORDER BY lower(u.email), u.id LIMIT $4 OFFSET $5", tenant_id, status, q, limit, offset)
    total = rows[0]["total"] if rows else await conn.fetchval(
        f"SELECT count(*) FROM identity_users u WHERE {where}", tenant_id, status, q)
    return rows, int(total)


async def get_user(conn: asyncpg.Connection, tenant_id: str, ref: str) -> asyncpg.Record | None:
    """By ScaiKey id (usr_...) or email (case-insensitive); live rows first."""
    return await conn.fetchrow(  # type: ignore[no-any-return]
        f"SELECT u.*, {_USER_GROUPS} FROM identity_users u WHERE u.tenant_id = $1"
        " AND (u.id = $2 OR lower(u.email) = lower($2)) ORDER BY (u.deleted_at IS NULL) DESC, (u.id = $2) DESC"
        " LIMIT 1", tenant_id, ref)


async def user_memberships(conn: asyncpg.Connection, tenant_id: str, user_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT g.id, g.name, m.membership_type, m.added_at FROM identity_memberships m"
        " JOIN identity_groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id AND g.deleted_at IS NULL"
        " WHERE m.tenant_id = $1 AND m.member_type = 'user' AND m.member_id = $2 AND m.deleted_at IS NULL"
        " ORDER BY g.name", tenant_id, user_id))


async def principal_row(conn: asyncpg.Connection, tenant_id: str, subject: str,
                        email: str | None) -> asyncpg.Record | None:
    """One round trip for the authenticator's enrichment: status, role and live group names."""
    return await conn.fetchrow(  # type: ignore[no-any-return]
        """
        SELECT u.id, u.email, u.status, u.admin_role, u.admin_role_source, u.deleted_at,
          COALESCE((SELECT array_agg(DISTINCT g.name) FROM identity_memberships m
                    JOIN identity_groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
                         AND g.deleted_at IS NULL
                    WHERE m.tenant_id = u.tenant_id AND m.member_type = 'user' AND m.member_id = u.id
                      AND m.deleted_at IS NULL), '{}') AS group_names
        FROM identity_users u WHERE u.tenant_id = $1 AND (u.id = $2 OR lower(u.email) = lower($3))
        ORDER BY (u.deleted_at IS NULL) DESC, (u.id = $2) DESC LIMIT 1
        """, tenant_id, subject, email or "")


async def list_groups(conn: asyncpg.Connection, tenant_id: str, *, q: str | None, limit: int,
                      offset: int) -> tuple[list[asyncpg.Record], int]:
    where = "g.tenant_id = $1 AND g.deleted_at IS NULL AND ($2::text IS NULL OR g.name ILIKE '%' || $2 || '%')"
    rows = await conn.fetch(
        f"""SELECT g.*, (SELECT count(*) FROM identity_memberships m WHERE m.tenant_id = g.tenant_id
                 AND m.group_id = g.id AND m.member_type = 'user' AND m.deleted_at IS NULL) AS member_count,
                count(*) OVER () AS total
            FROM identity_groups g WHERE {where} ORDER BY g.name, g.id LIMIT $3 OFFSET $4""",
        tenant_id, q, limit, offset)
    total = rows[0]["total"] if rows else await conn.fetchval(
        f"SELECT count(*) FROM identity_groups g WHERE {where}", tenant_id, q)
    return rows, int(total)


async def get_group(conn: asyncpg.Connection, tenant_id: str, ref: str) -> asyncpg.Record | None:
    """By id or name (live first)."""
    return await conn.fetchrow(  # type: ignore[no-any-return]
        "SELECT * FROM identity_groups WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
        " ORDER BY (deleted_at IS NULL) DESC, (id = $2) DESC LIMIT 1", tenant_id, ref)


async def group_members(conn: asyncpg.Connection, tenant_id: str, group_id: str, *, limit: int,
                        offset: int) -> tuple[list[asyncpg.Record], int]:
    where = ("m.tenant_id = $1 AND m.group_id = $2 AND m.member_type = 'user' AND m.deleted_at IS NULL"
             " AND u.deleted_at IS NULL")
    join = "FROM identity_memberships m JOIN identity_users u ON u.tenant_id = m.tenant_id AND u.id = m.member_id"
    rows = await conn.fetch(
        f"SELECT m.member_id AS user_id, u.email, m.membership_type, m.added_at, count(*) OVER () AS total"
        f" {join} WHERE {where} ORDER BY lower(u.email) LIMIT $3 OFFSET $4", tenant_id, group_id, limit, offset)
    total = rows[0]["total"] if rows else await conn.fetchval(
        f"SELECT count(*) {join} WHERE {where}", tenant_id, group_id)
    return rows, int(total)


async def group_parents(conn: asyncpg.Connection, tenant_id: str, group_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT group_id FROM identity_memberships WHERE tenant_id = $1 AND member_type = 'group'"
        " AND member_id = $2 AND deleted_at IS NULL ORDER BY group_id", tenant_id, group_id)
    return [r["group_id"] for r in rows]
