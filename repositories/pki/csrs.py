"""SQL for the CSR approval workflow (``pki_csrs``)."""

from __future__ import annotations

import asyncpg
import orjson

COLS = ("id, tenant_id, role_name, csr_pem, common_name, names, ip_sans, ttl, status, requested_by, decided_by,"
        " decided_at, decision_reason, certificate_id, created_at")


async def insert(conn: asyncpg.Connection, *, id: str, tenant_id: str, role_name: str, csr_pem: str,
                 common_name: str, names: list[str], ip_sans: list[str], ttl: str | None,
                 requested_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO pki_csrs (id, tenant_id, role_name, csr_pem, common_name, names, ip_sans, ttl, status,"
        f" requested_by) VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7::jsonb,$8,'pending',$9) RETURNING {COLS}",
        id, tenant_id, role_name, csr_pem, common_name, orjson.dumps(names).decode(), orjson.dumps(ip_sans).decode(),
        ttl, requested_by)


async def get(conn: asyncpg.Connection, tenant_id: str, csr_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {COLS} FROM pki_csrs WHERE tenant_id = $1 AND id = $2{lock}", tenant_id, csr_id)


async def list_page(conn: asyncpg.Connection, tenant_id: str, *, status: str | None, after: str | None,
                    limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLS} FROM pki_csrs WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $4", tenant_id, status, after, limit)


async def decide(conn: asyncpg.Connection, tenant_id: str, csr_id: str, *, status: str, decided_by: str,
                 reason: str | None, certificate_id: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE pki_csrs SET status = $3, decided_by = $4, decided_at = now(), decision_reason = $5,"
        f" certificate_id = $6 WHERE tenant_id = $1 AND id = $2 RETURNING {COLS}",
        tenant_id, csr_id, status, decided_by, reason, certificate_id)
