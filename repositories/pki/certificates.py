"""SQL for issued certificates (``pki_certificates``) and the exactly-once expiry-notice ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

COLS = ("id, tenant_id, ca_id, role_name, source, serial_number, common_name, alt_names, ip_sans, key_type, key_bits,"
        " certificate_pem, (key_ciphertext IS NOT NULL) AS key_stored, not_before, not_after, revoked_at,"
        " revocation_reason, created_at, created_by, renewed_from_id")


def names_of(row: asyncpg.Record, col: str) -> list[str]:
    raw = row[col]
    return orjson.loads(raw) if isinstance(raw, str | bytes) else list(raw)


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, ca_id: str, role_name: str | None,
                 source: str, serial_number: str, common_name: str, alt_names: list[str], ip_sans: list[str],
                 key_type: str, key_bits: int, certificate_pem: str, key_ciphertext: bytes | None,
                 not_before: datetime, not_after: datetime, created_by: str,
                 renewed_from_id: str | None = None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO pki_certificates (id, tenant_id, ca_id, role_name, source, serial_number, common_name, alt_names,"
        " ip_sans, key_type, key_bits, certificate_pem, key_ciphertext, not_before, not_after, created_by,"
        " renewed_from_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9::jsonb,$10,$11,$12,$13,$14,$15,$16,$17)"
        f" RETURNING {COLS}", id, tenant_id, ca_id, role_name, source, serial_number, common_name,
        orjson.dumps(alt_names).decode(), orjson.dumps(ip_sans).decode(), key_type, key_bits, certificate_pem,
        key_ciphertext, not_before, not_after, created_by, renewed_from_id)


async def renewal_of(conn: asyncpg.Connection, tenant_id: str, cert_id: str) -> asyncpg.Record | None:
    """The certificate that renewed ``cert_id`` (internal auto-renewal is idempotent on it)."""
    return await conn.fetchrow(f"SELECT {COLS} FROM pki_certificates WHERE tenant_id = $1 AND renewed_from_id = $2"
                               " ORDER BY created_at, id LIMIT 1", tenant_id, cert_id)


async def get(conn: asyncpg.Connection, tenant_id: str, cert_id: str, *,
              for_update: bool = False) -> asyncpg.Record | None:
    # NO KEY UPDATE: serializes writers of the row without blocking the FOR KEY SHARE locks that foreign-key
    # checks take (pki_cas.parent_ca_id, pki_certificates.ca_id); plain FOR UPDATE deadlocked a CA revocation
    # against an issuance updating the child CA's row twice in one transaction (which re-runs the FK check).
    lock = " FOR NO KEY UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {COLS} FROM pki_certificates WHERE tenant_id = $1 AND id = $2{lock}",
                               tenant_id, cert_id)


async def list_page(conn: asyncpg.Connection, tenant_id: str, *, ca_id: str | None, expiring_before: datetime | None,
                    include_revoked: bool, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLS} FROM pki_certificates WHERE tenant_id = $1 AND ($2::text IS NULL OR ca_id = $2)"
        " AND ($3::timestamptz IS NULL OR (not_after <= $3 AND not_after > now())) AND ($4 OR revoked_at IS NULL)"
        " AND ($5::text IS NULL OR id > $5) ORDER BY id LIMIT $6",
        tenant_id, ca_id, expiring_before, include_revoked, after, limit)


async def revoke(conn: asyncpg.Connection, tenant_id: str, cert_id: str, at: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE pki_certificates SET revoked_at = $3, revocation_reason = $4 WHERE tenant_id = $1 AND id = $2"
        " AND revoked_at IS NULL", tenant_id, cert_id, at, reason)


async def revoke_under(conn: asyncpg.Connection, tenant_id: str, ca_ids: list[str], at: datetime,
                       reason: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE pki_certificates SET revoked_at = $3, revocation_reason = $4 WHERE tenant_id = $1"
        " AND ca_id = ANY($2::text[]) AND revoked_at IS NULL RETURNING id, ca_id, serial_number, common_name",
        tenant_id, ca_ids, at, reason)


async def revoked_serials(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> list[asyncpg.Record]:
    """Every revoked serial the CA signed: leaves, and child CAs (their certificates are the CA's too)."""
    return await conn.fetch(
        "SELECT serial_number, revoked_at, revocation_reason FROM pki_certificates WHERE tenant_id = $1"
        " AND ca_id = $2 AND revoked_at IS NOT NULL AND not_after > now()"
        " UNION ALL SELECT serial_number, revoked_at, revocation_reason FROM pki_cas WHERE tenant_id = $1"
        " AND parent_ca_id = $2 AND revoked_at IS NOT NULL ORDER BY 2", tenant_id, ca_id)


async def key_blob(conn: asyncpg.Connection, tenant_id: str, cert_id: str) -> bytes | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT key_ciphertext FROM pki_certificates WHERE tenant_id = $1 AND id = $2", tenant_id, cert_id)


async def expiring_unnotified(conn: asyncpg.Connection, threshold_days: int, now: datetime,
                              limit: int) -> list[asyncpg.Record]:
    """Active certificates within ``threshold_days`` of expiry with no notice yet for that threshold; locked."""
    return await conn.fetch(
        "SELECT c.id, c.tenant_id, c.ca_id, c.serial_number, c.common_name, c.alt_names, c.not_after,"
        " COALESCE(t.partner_id, c.partner_id) AS partner_id"  # ACME certificates have no internal CA
        " FROM pki_certificates c LEFT JOIN pki_cas t ON t.id = c.ca_id"
        " WHERE c.revoked_at IS NULL AND c.not_after > $2 AND c.not_after <= $2 + make_interval(days => $1)"
        " AND NOT EXISTS (SELECT 1 FROM pki_expiry_notices n WHERE n.certificate_id = c.id"
        " AND n.threshold_days <= $1) ORDER BY c.not_after LIMIT $3 FOR NO KEY UPDATE OF c SKIP LOCKED",
        threshold_days, now, limit)


async def record_notice(conn: asyncpg.Connection, cert_id: str, threshold_days: int) -> bool:
    status = await conn.execute(
        "INSERT INTO pki_expiry_notices (certificate_id, threshold_days) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        cert_id, threshold_days)
    return status.endswith(" 1")


async def active_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT ca_id, count(*) AS n FROM pki_certificates WHERE revoked_at IS NULL"
                            " AND not_after > now() GROUP BY ca_id")


async def expiring_count(conn: asyncpg.Connection, days: int) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(*) FROM pki_certificates WHERE revoked_at IS NULL AND not_after > now()"
        " AND not_after <= now() + make_interval(days => $1)", days)


def as_json(value: list[str]) -> Any:
    return orjson.dumps(value).decode()
