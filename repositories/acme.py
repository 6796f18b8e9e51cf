"""SQL for ACME accounts, DNS providers, ACME orders, http-01 tokens and the ACME rows of ``pki_certificates``.
Every query takes the tenant explicitly (except the token lookup, which the unauthenticated challenge route
serves by token alone, as the CA asks for it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

ACCOUNT_COLS = ("id, tenant_id, partner_id, name, provider, environment, directory_url, email, account_url, status,"
                " created_at, created_by")
PROVIDER_COLS = ("id, tenant_id, partner_id, name, provider_type, config, managed_zones, is_active, created_at,"
                 " updated_at, created_by")
ORDER_COLS = ("id, tenant_id, partner_id, account_id, dns_provider_id, domains, challenge_type, key_type, status,"
              " challenges, error, tries, certificate_id, managed_id, renewal_of_id, auto_renew, renew_before,"
              " created_at, updated_at, created_by")


def _j(value: Any) -> str:
    return orjson.dumps(value).decode()


def jsonval(row: asyncpg.Record, col: str) -> Any:
    raw = row[col]
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


# ------------------------------------------------------------------------------------------------ accounts


async def insert_account(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, name: str,
                         provider: str, environment: str, directory_url: str, email: str | None,
                         account_url: str, key_ciphertext: bytes, created_by: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO acme_accounts (id, tenant_id, partner_id, name, provider, environment, directory_url, email,"
        f" account_url, key_ciphertext, created_by) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING {ACCOUNT_COLS}",
        id, tenant_id, partner_id, name, provider, environment, directory_url, email, account_url, key_ciphertext,
        created_by)


async def get_account(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {ACCOUNT_COLS} FROM acme_accounts WHERE tenant_id = $1 AND id = $2",
                               tenant_id, account_id)


async def account_key(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> bytes | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT key_ciphertext FROM acme_accounts WHERE tenant_id = $1 AND id = $2", tenant_id, account_id)


async def list_accounts(conn: asyncpg.Connection, tenant_id: str, after: str | None,
                        limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {ACCOUNT_COLS} FROM acme_accounts WHERE tenant_id = $1"
                            " AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3", tenant_id, after, limit)


async def account_in_use(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM acme_orders WHERE tenant_id = $1 AND account_id = $2)", tenant_id, account_id))


async def delete_account(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> bool:
    status = await conn.execute("DELETE FROM acme_accounts WHERE tenant_id = $1 AND id = $2", tenant_id, account_id)
    return bool(status.endswith(" 1"))


# ------------------------------------------------------------------------------------------- DNS providers


async def insert_provider(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None, name: str,
                          provider_type: str, config: dict[str, Any], managed_zones: list[str],
                          credentials_ciphertext: bytes, created_by: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO dns_providers (id, tenant_id, partner_id, name, provider_type, config, managed_zones,"
        " credentials_ciphertext, created_by) VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7::jsonb,$8,$9)"
        f" RETURNING {PROVIDER_COLS}", id, tenant_id, partner_id, name, provider_type, _j(config),
        _j(managed_zones), credentials_ciphertext, created_by)


async def get_provider(conn: asyncpg.Connection, tenant_id: str, provider_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {PROVIDER_COLS} FROM dns_providers WHERE tenant_id = $1 AND id = $2",
                               tenant_id, provider_id)


async def provider_credentials(conn: asyncpg.Connection, tenant_id: str, provider_id: str) -> bytes | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT credentials_ciphertext FROM dns_providers WHERE tenant_id = $1 AND id = $2", tenant_id, provider_id)


async def list_providers(conn: asyncpg.Connection, tenant_id: str, after: str | None,
                         limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {PROVIDER_COLS} FROM dns_providers WHERE tenant_id = $1"
                            " AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3", tenant_id, after, limit)


async def active_providers(conn: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {PROVIDER_COLS} FROM dns_providers WHERE tenant_id = $1 AND is_active"
                            " ORDER BY id", tenant_id)


async def update_provider(conn: asyncpg.Connection, tenant_id: str, provider_id: str, *, name: str,
                          config: dict[str, Any], managed_zones: list[str], is_active: bool,
                          credentials_ciphertext: bytes | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE dns_providers SET name = $3, config = $4::jsonb, managed_zones = $5::jsonb, is_active = $6,"
        " credentials_ciphertext = COALESCE($7, credentials_ciphertext), updated_at = now()"
        f" WHERE tenant_id = $1 AND id = $2 RETURNING {PROVIDER_COLS}", tenant_id, provider_id, name, _j(config),
        _j(managed_zones), is_active, credentials_ciphertext)


async def provider_in_use(conn: asyncpg.Connection, tenant_id: str, provider_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM acme_orders WHERE tenant_id = $1 AND dns_provider_id = $2"
        " AND (status IN ('pending', 'processing') OR auto_renew))", tenant_id, provider_id))


async def delete_provider(conn: asyncpg.Connection, tenant_id: str, provider_id: str) -> bool:
    status = await conn.execute("DELETE FROM dns_providers WHERE tenant_id = $1 AND id = $2", tenant_id, provider_id)
    return bool(status.endswith(" 1"))


# ------------------------------------------------------------------------------------------------ orders


async def insert_order(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None,
                       account_id: str, dns_provider_id: str | None, domains: list[str], challenge_type: str,
                       key_type: str, managed_id: str, renewal_of_id: str | None, auto_renew: bool,
                       renew_before: str | None, created_by: str | None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO acme_orders (id, tenant_id, partner_id, account_id, dns_provider_id, domains, challenge_type,"
        " key_type, status, managed_id, renewal_of_id, auto_renew, renew_before, created_by)"
        " VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8,'pending',$9,$10,$11,$12,$13)"
        f" RETURNING {ORDER_COLS}", id, tenant_id, partner_id, account_id, dns_provider_id, _j(domains),
        challenge_type, key_type, managed_id, renewal_of_id, auto_renew, renew_before, created_by)


async def get_order(conn: asyncpg.Connection, tenant_id: str, order_id: str, *,
                    for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {ORDER_COLS} FROM acme_orders WHERE tenant_id = $1 AND id = $2{lock}",
                               tenant_id, order_id)


async def list_orders(conn: asyncpg.Connection, tenant_id: str, after: str | None,
                      limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {ORDER_COLS} FROM acme_orders WHERE tenant_id = $1"
                            " AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3", tenant_id, after, limit)


async def set_order(conn: asyncpg.Connection, order_id: str, *, status: str,
                    challenges: list[dict[str, Any]] | None = None, error: dict[str, Any] | None = None,
                    certificate_id: str | None = None, tries: int | None = None) -> None:
    await conn.execute(
        "UPDATE acme_orders SET status = $2, challenges = COALESCE($3::jsonb, challenges), error = $4::jsonb,"
        " certificate_id = COALESCE($5, certificate_id), tries = COALESCE($6, tries), updated_at = now()"
        " WHERE id = $1", order_id, status, None if challenges is None else _j(challenges),
        None if error is None else _j(error), certificate_id, tries)


# ------------------------------------------------------------------------------------- http-01 tokens


async def put_tokens(conn: asyncpg.Connection, order_id: str, tokens: list[tuple[str, str]]) -> None:
    await conn.executemany(
        "INSERT INTO acme_http_tokens (token, order_id, key_authorization) VALUES ($1, $2, $3)"
        " ON CONFLICT (token) DO UPDATE SET key_authorization = EXCLUDED.key_authorization",
        [(t, order_id, v) for t, v in tokens])


async def delete_tokens(conn: asyncpg.Connection, order_id: str) -> None:
    await conn.execute("DELETE FROM acme_http_tokens WHERE order_id = $1", order_id)


async def token(conn: asyncpg.Connection, token_value: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT key_authorization FROM acme_http_tokens WHERE token = $1", token_value)


# ----------------------------------------------------------------------------------- certificate records


async def insert_certificate(conn: asyncpg.Connection, *, id: str, tenant_id: str, partner_id: str | None,
                             serial_number: str, common_name: str, alt_names: list[str], key_type: str,
                             key_bits: int, certificate_pem: str, key_ciphertext: bytes, not_before: datetime,
                             not_after: datetime, created_by: str, renewed_from_id: str | None,
                             acme_account_id: str, acme_order_id: str) -> bool:
    status = await conn.execute(
        "INSERT INTO pki_certificates (id, tenant_id, partner_id, ca_id, role_name, source, serial_number,"
        " common_name, alt_names, ip_sans, key_type, key_bits, certificate_pem, key_ciphertext, not_before,"
        " not_after, created_by, renewed_from_id, acme_account_id, acme_order_id)"
        " VALUES ($1,$2,$3,NULL,NULL,'acme',$4,$5,$6::jsonb,'[]'::jsonb,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
        " ON CONFLICT (id) DO NOTHING", id, tenant_id, partner_id, serial_number, common_name, _j(alt_names),
        key_type, key_bits, certificate_pem, key_ciphertext, not_before, not_after, created_by, renewed_from_id,
        acme_account_id, acme_order_id)
    return bool(status.endswith(" 1"))


async def certificate(conn: asyncpg.Connection, tenant_id: str, cert_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, serial_number, common_name, alt_names, not_before, not_after, renewed_from_id, acme_order_id"
        " FROM pki_certificates WHERE tenant_id = $1 AND id = $2", tenant_id, cert_id)


async def managed_exists(conn: asyncpg.Connection, tenant_id: str, managed_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM acme_orders WHERE tenant_id = $1"
                                    " AND managed_id = $2)", tenant_id, managed_id))
