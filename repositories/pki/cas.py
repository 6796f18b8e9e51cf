"""SQL for certificate authorities (``pki_cas``), including the CA's current CRL."""

from __future__ import annotations

from datetime import datetime

import asyncpg

COLS = ("id, tenant_id, partner_id, name, common_name, ca_type, parent_ca_id, key_type, key_size, serial_number,"
        " certificate_pem, valid_from, valid_until, revoked_at, revocation_reason, certificates_issued, crl_number,"
        " crl_this_update, crl_next_update, created_at, created_by")


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str, name: str, common_name: str,
                 ca_type: str, parent_ca_id: str | None, key_type: str, key_size: int, serial_number: str,
                 certificate_pem: str, key_ciphertext: bytes, valid_from: datetime, valid_until: datetime,
                 created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO pki_cas (id, tenant_id, partner_id, name, common_name, ca_type, parent_ca_id, key_type, key_size,"
        " serial_number, certificate_pem, key_ciphertext, valid_from, valid_until, created_by)"
        f" VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) RETURNING {COLS}",
        id, tenant_id, partner_id, name, common_name, ca_type, parent_ca_id, key_type, key_size, serial_number,
        certificate_pem, key_ciphertext, valid_from, valid_until, created_by)


async def get(conn: asyncpg.Connection, tenant_id: str, ca_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    # NO KEY UPDATE: serializes writers of the row without blocking the FOR KEY SHARE locks that foreign-key
    # checks take (pki_cas.parent_ca_id, pki_certificates.ca_id); plain FOR UPDATE deadlocked a CA revocation
    # against an issuance updating the child CA's row twice in one transaction (which re-runs the FK check).
    lock = " FOR NO KEY UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {COLS} FROM pki_cas WHERE tenant_id = $1 AND id = $2{lock}", tenant_id, ca_id)


async def key_blob(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> bytes | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT key_ciphertext FROM pki_cas WHERE tenant_id = $1 AND id = $2", tenant_id, ca_id)


async def get_public(conn: asyncpg.Connection, ca_id: str) -> asyncpg.Record | None:
    """The unauthenticated CRL route: the CA id is the capability (docs/pki.md)."""
    return await conn.fetchrow(
        "SELECT id, tenant_id, crl_der, crl_next_update FROM pki_cas WHERE id = $1", ca_id)


async def list_page(conn: asyncpg.Connection, tenant_id: str, *, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLS} FROM pki_cas WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
        tenant_id, after, limit)


async def descendants(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> list[asyncpg.Record]:
    """``ca_id`` and every CA below it (same tenant), parents before children."""
    return await conn.fetch(
        "WITH RECURSIVE t(id, depth) AS (SELECT id, 0 FROM pki_cas WHERE tenant_id = $1 AND id = $2"
        " UNION ALL SELECT c.id, t.depth + 1 FROM pki_cas c JOIN t ON c.parent_ca_id = t.id WHERE c.tenant_id = $1)"
        f" SELECT {', '.join('c.' + c.strip() for c in COLS.split(','))} FROM pki_cas c JOIN t USING (id)"
        " ORDER BY t.depth, c.id", tenant_id, ca_id)


async def mark_revoked(conn: asyncpg.Connection, tenant_id: str, ids: list[str], at: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE pki_cas SET revoked_at = $3, revocation_reason = $4 WHERE tenant_id = $1 AND id = ANY($2::text[])"
        " AND revoked_at IS NULL", tenant_id, ids, at, reason)


async def count_issued(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> None:
    await conn.execute("UPDATE pki_cas SET certificates_issued = certificates_issued + 1"
                       " WHERE tenant_id = $1 AND id = $2", tenant_id, ca_id)


async def next_crl_number(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "UPDATE pki_cas SET crl_number = crl_number + 1 WHERE tenant_id = $1 AND id = $2 RETURNING crl_number",
        tenant_id, ca_id)


async def store_crl(conn: asyncpg.Connection, tenant_id: str, ca_id: str, der: bytes, this_update: datetime,
                    next_update: datetime) -> None:
    await conn.execute(
        "UPDATE pki_cas SET crl_der = $3, crl_this_update = $4, crl_next_update = $5 WHERE tenant_id = $1 AND id = $2",
        tenant_id, ca_id, der, this_update, next_update)


async def crl_due(conn: asyncpg.Connection, before: datetime, limit: int) -> list[asyncpg.Record]:
    """CAs whose CRL is missing or whose nextUpdate is before ``before`` (the rebuild schedule)."""
    return await conn.fetch(
        "SELECT id, tenant_id, partner_id FROM pki_cas WHERE (crl_next_update IS NULL OR crl_next_update < $1)"
        " AND valid_until > now() ORDER BY crl_next_update NULLS FIRST LIMIT $2", before, limit)


async def role_count(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(*) FROM pki_roles WHERE tenant_id = $1 AND ca_id = $2", tenant_id, ca_id)
