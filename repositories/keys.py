"""SQL ``KeyStore`` for the key hierarchy (crypto/keyring.py): tables ``partner_keys`` and ``tenant_keys``.

Contract (see the keyring docstring): ``get_*(owner, None)`` is the highest version; inserts are race-safe
(``ON CONFLICT DO NOTHING`` then a re-read returning the stored row) and durable when they return: every
call takes its own pooled connection in autocommit mode, never a request transaction.

Tenant keys and partner moves (issue 11 item 9): ``insert_tenant_key`` reads the tenant's partner under a share
lock and refuses (:class:`PartnerChanged`) a key wrapped under another partner, so a key created while a move
commits is never left under the old partner; :func:`rewrap_tenant_keys` is the move's half, run inside the
transaction that changes ``tenants.partner_id`` (repositories/tenants.py ``move_tenant``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crypto.errors import KeyNotFound, PartnerChanged
from crypto.keyring import KeyHierarchy, WrappedKey
from db.engine import Database

_TABLES = {"partner": ("partner_keys", "partner_id"), "tenant": ("tenant_keys", "tenant_id")}


def _row(rec: asyncpg.Record | None) -> WrappedKey | None:
    if rec is None:
        return None
    return WrappedKey(rec["owner_id"], rec["version"], bytes(rec["wrapped"]), rec["kms_key_id"], rec["created_at"])


def _select(kind: str, exact: bool) -> str:
    table, col = _TABLES[kind]
    where = f"{col} = $1 AND version = $2" if exact else f"{col} = $1 ORDER BY version DESC LIMIT 1"
    return f"SELECT {col} AS owner_id, version, wrapped, kms_key_id, created_at FROM {table} WHERE {where}"


class SqlKeyStore:
    """Process-wide store over the shared pool (holds the Database, not a connection)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _get(self, kind: str, owner: str, version: int | None) -> WrappedKey | None:
        async with self.db.raw() as conn:
            if version is None:
                return _row(await conn.fetchrow(_select(kind, False), owner))
            return _row(await conn.fetchrow(_select(kind, True), owner, version))

    async def _insert(self, kind: str, key: WrappedKey) -> WrappedKey:
        table, col = _TABLES[kind]
        async with self.db.raw() as conn:
            await conn.execute(
                f"INSERT INTO {table} ({col}, version, wrapped, kms_key_id, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                key.owner_id, key.version, key.wrapped, key.kms_key_id, key.created_at,
            )
            stored = _row(await conn.fetchrow(_select(kind, True), key.owner_id, key.version))
        if stored is None:  # pragma: no cover - the row was just inserted or already present
            raise KeyNotFound(f"{kind} key {key.owner_id} v{key.version} vanished after insert")
        return stored

    async def get_partner_key(self, partner_id: str, version: int | None = None) -> WrappedKey | None:
        return await self._get("partner", partner_id, version)

    async def insert_partner_key(self, key: WrappedKey) -> WrappedKey:
        return await self._insert("partner", key)

    async def list_partner_keys(self) -> Sequence[WrappedKey]:
        async with self.db.raw() as conn:
            rows = await conn.fetch(
                "SELECT partner_id AS owner_id, version, wrapped, kms_key_id, created_at FROM partner_keys"
                " ORDER BY partner_id, version"
            )
        return [r for r in map(_row, rows) if r is not None]

    async def update_partner_key_wrapping(
        self, partner_id: str, version: int, wrapped: bytes, kms_key_id: str
    ) -> None:
        async with self.db.raw() as conn:
            status = await conn.execute(
                "UPDATE partner_keys SET wrapped = $3, kms_key_id = $4, rewrapped_at = now()"
                " WHERE partner_id = $1 AND version = $2",
                partner_id, version, wrapped, kms_key_id,
            )
        if status.endswith(" 0"):
            raise KeyNotFound(f"partner key {partner_id} v{version} not found")

    async def get_tenant_key(self, tenant_id: str, version: int | None = None) -> WrappedKey | None:
        return await self._get("tenant", tenant_id, version)

    async def insert_tenant_key(self, key: WrappedKey) -> WrappedKey:
        async with self.db.raw() as conn, conn.transaction():
            # FOR SHARE waits for a move in progress (it holds FOR UPDATE) and then sees its result.
            partner = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1 FOR SHARE", key.owner_id)
            if partner is not None and key.wrapping_partner is not None and partner != key.wrapping_partner:
                raise PartnerChanged(key.owner_id, partner)
            await conn.execute(
                "INSERT INTO tenant_keys (tenant_id, version, wrapped, kms_key_id, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                key.owner_id, key.version, key.wrapped, key.kms_key_id, key.created_at,
            )
            stored = _row(await conn.fetchrow(_select("tenant", True), key.owner_id, key.version))
        if stored is None:  # pragma: no cover - the row was just inserted or already present
            raise KeyNotFound(f"tenant key {key.owner_id} v{key.version} vanished after insert")
        return stored


async def rewrap_tenant_keys(conn: asyncpg.Connection, keyring: KeyHierarchy, tenant_id: str,
                             new_partner_id: str) -> int:
    """Re-wrap every key version of ``tenant_id`` under ``new_partner_id`` on ``conn`` (the caller's transaction,
    which moves the tenant: both commit or neither). Rows already under that partner are left alone. Returns how
    many rows changed."""
    if not conn.is_in_transaction():
        raise RuntimeError("rewrap_tenant_keys must run inside the transaction that moves the tenant")
    recs = await conn.fetch(
        "SELECT tenant_id AS owner_id, version, wrapped, kms_key_id, created_at FROM tenant_keys"
        " WHERE tenant_id = $1 ORDER BY version FOR UPDATE", tenant_id)
    changed = 0
    for row in (r for r in map(_row, recs) if r is not None):
        if row.wrapping_partner == new_partner_id:
            continue
        new = await keyring.rewrap_tenant_key(row, new_partner_id)
        await conn.execute("UPDATE tenant_keys SET wrapped = $3, kms_key_id = $4 WHERE tenant_id = $1 AND version = $2",
                           tenant_id, row.version, new.wrapped, new.kms_key_id)
        changed += 1
    return changed


async def root_wrapping_status(conn: asyncpg.Connection, current_kms_key_id: str) -> dict[str, object]:
    """For ``/v1/health/detailed``: how many partner keys exist, how many are still wrapped under a root key other
    than ``current_kms_key_id`` (a root rotation not yet applied), and when a root rotation last re-wrapped one."""
    row = await conn.fetchrow(
        "SELECT count(*) AS partner_keys, count(*) FILTER (WHERE kms_key_id <> $1) AS stale,"
        " max(rewrapped_at) AS last_rotation FROM partner_keys",
        current_kms_key_id,
    )
    return {"partner_keys": int(row["partner_keys"]), "stale": int(row["stale"]), "last_rotation": row["last_rotation"]}
