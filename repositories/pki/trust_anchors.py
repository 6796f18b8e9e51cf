"""SQL for trust anchors (``pki_trust_anchors``): external CA certificates a tenant trusts."""

from __future__ import annotations

from datetime import datetime

import asyncpg

COLS = "id, tenant_id, name, certificate_pem, subject, issuer, fingerprint_sha256, not_before, not_after, created_at," \
       " created_by"


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, name: str, certificate_pem: str, subject: str,
                 issuer: str, fingerprint_sha256: str, not_before: datetime, not_after: datetime,
                 created_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO pki_trust_anchors (id, tenant_id, name, certificate_pem, subject, issuer, fingerprint_sha256,"
        f" not_before, not_after, created_by) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING {COLS}",
        id, tenant_id, name, certificate_pem, subject, issuer, fingerprint_sha256, not_before, not_after, created_by)


async def get(conn: asyncpg.Connection, tenant_id: str, anchor_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLS} FROM pki_trust_anchors WHERE tenant_id = $1 AND id = $2",
                               tenant_id, anchor_id)


async def list_page(conn: asyncpg.Connection, tenant_id: str, *, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLS} FROM pki_trust_anchors WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2)"
        " ORDER BY id LIMIT $3", tenant_id, after, limit)


async def delete(conn: asyncpg.Connection, tenant_id: str, anchor_id: str) -> bool:
    status = await conn.execute("DELETE FROM pki_trust_anchors WHERE tenant_id = $1 AND id = $2", tenant_id, anchor_id)
    return status.endswith(" 1")
