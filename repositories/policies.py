"""SQL for access policies and their bindings.

Visibility is one helper: a tenant sees its own tenant-scope policies plus the partner-scope policies of its
partner (``_VISIBLE``). Every query takes the tenant (and its partner) explicitly.

Bindings belong to the tenant they were created in (``policy_bindings.tenant_id``): their identity ids name
identities of that tenant. A tenant sees, counts, deletes and evaluates only its own bindings, also on a
partner-scope policy that every tenant of the partner shares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

_COLS = ("p.id, p.tenant_id, p.partner_id, p.name, p.description, p.scope, p.is_active, p.rules,"
         " p.created_at, p.updated_at, p.created_by")
_BINDING_COLS = "id, tenant_id, policy_id, identity_type, identity_id, expires_at, created_at, created_by"
#: $1 = tenant id, $2 = partner id. The one place that says which policies a tenant sees.
_VISIBLE = "((p.scope = 'tenant' AND p.tenant_id = $1) OR (p.scope = 'partner' AND p.partner_id = $2))"


def _rules_json(rules: list[dict[str, Any]]) -> str:
    return orjson.dumps(rules).decode()


def rules_of(row: asyncpg.Record) -> list[dict[str, Any]]:
    raw = row["rules"]
    return orjson.loads(raw) if isinstance(raw, str | bytes) else list(raw)


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, name: str,
                 description: str, scope: str, is_active: bool, rules: list[dict[str, Any]],
                 created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO policies AS p (id, tenant_id, partner_id, name, description, scope, is_active, rules,"
        f" created_by) VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9) RETURNING {_COLS}",
        id, tenant_id, partner_id, name, description, scope, is_active, _rules_json(rules), created_by,
    )


async def get(conn: asyncpg.Connection, tenant_id: str, partner_id: str | None, policy_id: str,
              *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLS} FROM policies p WHERE {_VISIBLE} AND p.id = $3{lock}", tenant_id, partner_id, policy_id
    )


async def list_page(conn: asyncpg.Connection, tenant_id: str, partner_id: str | None, *, scope: str | None,
                    include_inactive: bool, after: str | None, limit: int) -> list[asyncpg.Record]:
    """Policies with rule and live binding counts, ordered by id (ULIDs: creation order)."""
    return await conn.fetch(
        f"SELECT {_COLS}, jsonb_array_length(p.rules) AS rule_count,"
        " (SELECT count(*) FROM policy_bindings b WHERE b.policy_id = p.id AND b.tenant_id = $1"
        "   AND (b.expires_at IS NULL OR b.expires_at > now())) AS binding_count"
        f" FROM policies p WHERE {_VISIBLE}"
        " AND ($3::text IS NULL OR p.scope = $3) AND ($4 OR p.is_active)"
        " AND ($5::text IS NULL OR p.id > $5) ORDER BY p.id LIMIT $6",
        tenant_id, partner_id, scope, include_inactive, after, limit,
    )


async def update(conn: asyncpg.Connection, policy_id: str, *, name: str, description: str, is_active: bool,
                 rules: list[dict[str, Any]]) -> asyncpg.Record:
    """Update a row the caller already fetched (and locked) through ``get``. ``scope`` never changes."""
    return await conn.fetchrow(
        "UPDATE policies AS p SET name = $2, description = $3, is_active = $4, rules = $5::jsonb,"
        f" updated_at = now() WHERE p.id = $1 RETURNING {_COLS}",
        policy_id, name, description, is_active, _rules_json(rules),
    )


async def delete(conn: asyncpg.Connection, policy_id: str) -> None:
    """Delete a row the caller already fetched through ``get`` (bindings go with it: ON DELETE CASCADE)."""
    await conn.execute("DELETE FROM policies WHERE id = $1", policy_id)


# --- bindings ---------------------------------------------------------------------------------


async def live_binding_count(conn: asyncpg.Connection, policy_id: str) -> int:
    """Live bindings in every tenant (a partner-scope policy is in use while any tenant binds it)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM policy_bindings WHERE policy_id = $1 AND (expires_at IS NULL OR expires_at > now())",
        policy_id,
    ))


async def bindings_of(conn: asyncpg.Connection, policy_id: str, tenant_id: str) -> list[asyncpg.Record]:
    """The tenant's bindings of a policy the caller already resolved through ``get`` (another tenant's bindings
    of a shared partner-scope policy name that tenant's identities and are not shown)."""
    return await conn.fetch(
        f"SELECT {_BINDING_COLS} FROM policy_bindings WHERE policy_id = $1 AND tenant_id = $2 ORDER BY id",
        policy_id, tenant_id,
    )


async def insert_binding(conn: asyncpg.Connection, *, id: str, tenant_id: str, policy_id: str,
                         identity_type: str, identity_id: str, expires_at: datetime | None,
                         created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO policy_bindings (id, tenant_id, policy_id, identity_type, identity_id, expires_at, created_by)"
        f" VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING {_BINDING_COLS}",
        id, tenant_id, policy_id, identity_type, identity_id, expires_at, created_by,
    )


async def delete_binding(conn: asyncpg.Connection, policy_id: str, binding_id: str,
                         tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"DELETE FROM policy_bindings WHERE policy_id = $1 AND id = $2 AND tenant_id = $3 RETURNING {_BINDING_COLS}",
        policy_id, binding_id, tenant_id,
    )


# --- the compiled index's input -----------------------------------------------------------------


async def load_for_index(conn: asyncpg.Connection, tenant_id: str, partner_id: str | None
                         ) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Active policies (tenant + partner scope) and the tenant's own unexpired bindings of them, in evaluation
    order (created_at, id). Two indexed queries, one connection. Bindings other tenants of the partner made on
    a partner-scope policy are never loaded: they name those tenants' identities."""
    policies = await conn.fetch(
        f"SELECT {_COLS} FROM policies p WHERE {_VISIBLE} AND p.is_active ORDER BY p.created_at, p.id",
        tenant_id, partner_id,
    )
    if not policies:
        return [], []
    bindings = await conn.fetch(
        f"SELECT {_BINDING_COLS} FROM policy_bindings WHERE policy_id = ANY($1::text[]) AND tenant_id = $2"
        " AND (expires_at IS NULL OR expires_at > now())",
        [r["id"] for r in policies], tenant_id,
    )
    return list(policies), list(bindings)
