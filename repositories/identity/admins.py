"""SQL for admin roles on cached users: super-admin election from SUPER_ADMIN_GROUPS membership, the
BOOTSTRAP_SUPER_ADMIN grants, manual grants and revocations (``PUT /v1/identity/users/{id}/roles``, the
``scaivault admin`` CLI). Every statement on users takes ``tenant_id`` first, except the CLI's operator lookup."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


def _count(status: str) -> int:
    return int(status.split()[-1])


async def elect_super_admins(conn: asyncpg.Connection, tenant_id: str, group_refs: Sequence[str], *,
                             match_names: bool) -> tuple[int, int]:
    """Members (direct or nested) of the SUPER_ADMIN_GROUPS groups become super_admin (source=group); group
    admins who left are demoted. A group matches by its id (ScaiKey-assigned, globally unique) in any tenant, and
    by *name* only when ``match_names`` (the caller passes True for the operator tenant alone): a tenant admin
    can name a group anything, so a name is no proof of platform authority. Manual and bootstrap grants are never
    touched. Returns (promoted, demoted)."""
    members_sql = """
        SELECT DISTINCT m.member_id FROM identity_memberships m
        JOIN identity_groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id AND g.deleted_at IS NULL
        WHERE m.tenant_id = $1 AND m.member_type = 'user' AND m.deleted_at IS NULL
          AND (g.id = ANY($2::text[]) OR ($3::bool AND g.name = ANY($2::text[])))
    """
    refs = list(group_refs)
    promoted = _count(await conn.execute(
        f"UPDATE identity_users SET admin_role = 'super_admin', admin_role_source = 'group', updated_at = now()"
        f" WHERE tenant_id = $1 AND deleted_at IS NULL AND admin_role IS DISTINCT FROM 'super_admin'"
        f" AND id IN ({members_sql})", tenant_id, refs, match_names))
    demoted = _count(await conn.execute(
        f"UPDATE identity_users SET admin_role = NULL, admin_role_source = NULL, updated_at = now()"
        f" WHERE tenant_id = $1 AND deleted_at IS NULL AND admin_role = 'super_admin'"
        f" AND admin_role_source = 'group' AND id NOT IN ({members_sql})", tenant_id, refs, match_names))
    return promoted, demoted


async def apply_bootstrap(conn: asyncpg.Connection, tenant_id: str, emails: Sequence[str],
                          ids: Sequence[str]) -> int:
    """BOOTSTRAP_SUPER_ADMIN: matching live users become super_admin (source=bootstrap) unless a manual grant
    already made them one. Group-sourced super admins are re-labelled bootstrap, so groups never demote them.
    The caller passes ``emails`` only for the operator tenant (an email is unique per tenant, not globally)."""
    if not emails and not ids:
        return 0
    return _count(await conn.execute(
        "UPDATE identity_users SET admin_role = 'super_admin', admin_role_source = 'bootstrap', updated_at = now()"
        " WHERE tenant_id = $1 AND deleted_at IS NULL AND (lower(email) = ANY($2::text[]) OR id = ANY($3::text[]))"
        " AND (admin_role IS DISTINCT FROM 'super_admin' OR admin_role_source = 'group')",
        tenant_id, [e.lower() for e in emails], list(ids)))


async def demote_foreign_bootstrap(conn: asyncpg.Connection, tenant_id: str, emails: Sequence[str],
                                   ids: Sequence[str]) -> int:
    """Undo what the old cross-tenant email match granted: in a tenant other than the operator tenant, a
    bootstrap super admin whose *email* is listed in BOOTSTRAP_SUPER_ADMIN but whose id is not loses the role.
    Bootstrap grants that no longer match anything (the variable was emptied after set-up) are left alone."""
    if not emails:
        return 0
    return _count(await conn.execute(
        "UPDATE identity_users SET admin_role = NULL, admin_role_source = NULL, updated_at = now()"
        " WHERE tenant_id = $1 AND admin_role = 'super_admin' AND admin_role_source = 'bootstrap'"
        " AND lower(email) = ANY($2::text[]) AND NOT (id = ANY($3::text[]))",
        tenant_id, [e.lower() for e in emails], list(ids)))


async def super_admin_count(conn: asyncpg.Connection, tenant_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM identity_users WHERE tenant_id = $1 AND deleted_at IS NULL"
        " AND admin_role = 'super_admin'", tenant_id))


async def set_admin_role(conn: asyncpg.Connection, tenant_id: str, user_id: str, role: str | None,
                         source: str | None) -> bool:
    return _count(await conn.execute(
        "UPDATE identity_users SET admin_role = $3, admin_role_source = $4, updated_at = now()"
        " WHERE tenant_id = $1 AND id = $2", tenant_id, user_id, role, source)) == 1


async def find_users_by_email(conn: asyncpg.Connection, email: str,
                              tenant_id: str | None) -> list[asyncpg.Record]:
    """Operator lookup for the CLI by email or ScaiKey user id (``tenant_id`` None searches every tenant)."""
    return list(await conn.fetch(
        "SELECT tenant_id, id, email, admin_role, admin_role_source, deleted_at FROM identity_users"
        " WHERE (lower(email) = lower($1) OR id = $1) AND ($2::text IS NULL OR tenant_id = $2) ORDER BY tenant_id",
        email, tenant_id))
