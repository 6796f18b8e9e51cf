"""SQL for the partner/tenant identity-cache roots, and the one way a tenant changes partner.

Placeholder partners (issue 11 item 9, docs/crypto.md "Tenants changing partner"): a tenant first seen on a
token without a ``partner_id`` claim (or listed by ScaiKey without one) is recorded under its *own* placeholder
partner ``ptn_unassigned_<tenant_id>``, never under one partner shared by every such tenant: a partner id is a
namespace (partner key, partner-scope policies, partner secrets) and must not be shared by unrelated tenants.
Partner secrets are refused while a tenant's partner is a placeholder (api/routers/secrets.py); the legacy
shared ``ptn_unassigned`` counts as a placeholder too.

A tenant changes partner only through :func:`move_tenant`, inside one transaction that also re-wraps the tenant's
keys under the new partner (repositories/keys.py ``rewrap_tenant_keys``).
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from crypto.keyring import KeyHierarchy
from repositories.keys import rewrap_tenant_keys

UNASSIGNED_PARTNER = "ptn_unassigned"  # legacy: the one placeholder shared before issue 11 item 9
_PLACEHOLDER_PREFIX = UNASSIGNED_PARTNER + "_"

# The keyring, or a factory called only when a tenant really moves (so a process whose KMS is not configured,
# e.g. a worker, still syncs tenants whose partner does not change).
KeyringSource = KeyHierarchy | Callable[[], KeyHierarchy]


def placeholder_partner(tenant_id: str) -> str:
    """The tenant's own placeholder partner id, used until its real partner is known."""
    return _PLACEHOLDER_PREFIX + tenant_id


def is_placeholder_partner(partner_id: str | None) -> bool:
    """True for no partner, the legacy shared placeholder and every per-tenant placeholder."""
    return not partner_id or partner_id == UNASSIGNED_PARTNER or partner_id.startswith(_PLACEHOLDER_PREFIX)


async def get_tenant(conn: asyncpg.Connection, tenant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, partner_id, name, slug, status, deleted_at FROM tenants WHERE id = $1", tenant_id
    )


async def ensure_tenant(conn: asyncpg.Connection, tenant_id: str, partner_id: str | None) -> asyncpg.Record:
    """Record a tenant first seen on a verified token; never overwrites what sync stored. ``partner_id`` None:
    the tenant's own placeholder partner."""
    partner_id = partner_id or placeholder_partner(tenant_id)
    await conn.execute(
        "INSERT INTO partners (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", partner_id
    )
    await conn.execute(
        "INSERT INTO tenants (id, partner_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", tenant_id, partner_id
    )
    row = await get_tenant(conn, tenant_id)
    assert row is not None
    return row


async def move_tenant(conn: asyncpg.Connection, keyring: KeyringSource, tenant_id: str, partner_id: str) -> bool:
    """Move an existing tenant to ``partner_id`` in the caller's transaction: lock the tenant row, re-wrap its keys
    under the new partner, re-label its secrets' partner, then change ``tenants.partner_id``. False (nothing done)
    when the tenant is unknown or already there. A failure (KMS down) raises and the whole move rolls back."""
    if not conn.is_in_transaction():
        raise RuntimeError("move_tenant must run inside a transaction")
    current = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
    if current is None or current == partner_id:
        return False
    await conn.execute("INSERT INTO partners (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", partner_id)
    await rewrap_tenant_keys(conn, keyring if isinstance(keyring, KeyHierarchy) else keyring(), tenant_id,
                             partner_id)
    await conn.execute("UPDATE secrets SET partner_id = $2 WHERE scope = 'tenant' AND owner_id = $1"
                       " AND partner_id <> $2", tenant_id, partner_id)
    await conn.execute("UPDATE tenants SET partner_id = $2 WHERE id = $1", tenant_id, partner_id)
    return True
