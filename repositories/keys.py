"""SQL ``KeyStore`` for the key hierarchy (crypto/keyring.py): tables ``partner_keys`` and ``tenant_keys``.

Contract (see the keyring docstring): ``get_*(owner, None)`` is the highest version; inserts are race-safe
(``ON CONFLICT DO NOTHING`` then a re-read returning the stored row) and durable when they return: every
call takes its own pooled connection in autocommit mode, never a request transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crypto.errors import KeyNotFound
from crypto.keyring import WrappedKey
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
        return await self._insert("tenant", key)


async def root_wrapping_status(conn: asyncpg.Connection, current_kms_key_id: str) -> dict[str, object]:
    """For ``/v1/health/detailed``: how many partner keys exist, how many are still wrapped under a root key other
    than ``current_kms_key_id`` (a root rotation not yet applied), and when a root rotation last re-wrapped one."""
    row = await conn.fetchrow(
        "SELECT count(*) AS partner_keys, count(*) FILTER (WHERE kms_key_id <> $1) AS stale,"
        " max(rewrapped_at) AS last_rotation FROM partner_keys",
        current_kms_key_id,
    )
    return {"partner_keys": int(row["partner_keys"]), "stale": int(row["stale"]), "last_rotation": row["last_rotation"]}
