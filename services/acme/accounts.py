"""ACME accounts (lifecycle.md §3.6): the key is generated here, registered with the CA, sealed under the tenant
key and never returned. Creation talks to the CA synchronously so a bad directory URL or a refused EAB is
answered at once (nothing stored)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories import acme as repo
from services.acme import client, common

PROVIDERS = ("letsencrypt", "zerossl", "buypass", "google", "custom")
ENVIRONMENTS = ("production", "staging")
_FIELDS = frozenset({"name", "provider", "environment", "email", "directory_url", "eab_kid", "eab_hmac_key"})


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "provider": row["provider"], "environment": row["environment"],
            "directory_url": row["directory_url"], "email": row["email"], "status": row["status"],
            "created_at": common.iso(row["created_at"]), "created_by": row["created_by"]}


def _str(body: Mapping[str, Any], key: str, *, required: bool = False, max_len: int = 512) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise common.validation(key, f"{key} must be a non-empty string of at most {max_len} characters")
    return v


def directory_for(provider: str, environment: str, directory_url: str | None) -> str:
    if provider == "custom":
        if not directory_url or not directory_url.startswith(("https://", "http://")):
            raise common.validation("directory_url", "provider 'custom' requires directory_url (an http(s) URL)")
        return directory_url
    if directory_url:
        raise common.validation("directory_url", "directory_url is only accepted with provider 'custom'")
    return client.DIRECTORIES[provider][environment]


async def create(conn: asyncpg.Connection, ctx: RequestContext, keyring: Any, ca_bundle: str | None,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in _FIELDS)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    name = common.check_name(body.get("name"))
    provider = body.get("provider")
    if provider not in PROVIDERS:
        raise common.validation("provider", f"provider must be one of {', '.join(PROVIDERS)}")
    environment = body.get("environment", "production")
    if environment not in ENVIRONMENTS:
        raise common.validation("environment", "environment must be 'production' or 'staging'")
    email = _str(body, "email", max_len=254)
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        raise common.validation("email", "email must be an e-mail address")
    eab_kid, eab_hmac = _str(body, "eab_kid"), _str(body, "eab_hmac_key")
    if provider in client.EAB_REQUIRED and not (eab_kid and eab_hmac):
        raise common.validation("eab_kid", f"provider '{provider}' requires external account binding"
                                           " (eab_kid and eab_hmac_key)")
    directory = directory_for(str(provider), str(environment), _str(body, "directory_url", max_len=2048))
    if await conn.fetchval("SELECT 1 FROM acme_accounts WHERE tenant_id = $1 AND name = $2", ctx.tenant_id, name):
        raise AppError("conflict", f"an ACME account named '{name}' exists", {"name": name})

    key_pem = client.generate_account_key()

    def register() -> str:
        session = client.Session(directory, key_pem, ca_bundle=ca_bundle)
        return session.register(email, eab_kid=eab_kid, eab_hmac_key=eab_hmac)

    try:
        account_url = await asyncio.to_thread(register)
    except client.AcmeFailure as exc:
        if exc.code == "invalid_directory":
            raise common.validation("directory_url", exc.message) from None
        raise AppError(exc.code if exc.code == "backend_rate_limited" else "acme_backend_error", exc.message,
                       {"retry_after": exc.retry_after} if exc.retry_after is not None else {}) from None
    account_id = new_id("acmeacct")
    blob = await common.seal(keyring, key_pem, common.account_key_aad(ctx.tenant_id, account_id),
                             tenant_id=ctx.tenant_id, partner_id=ctx.partner_id)
    row = await repo.insert_account(conn, id=account_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                                    name=name, provider=str(provider), environment=str(environment),
                                    directory_url=directory, email=email, account_url=account_url,
                                    key_ciphertext=blob, created_by=ctx.principal.identity_id)
    return public(row)


async def fetch(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> asyncpg.Record:
    row = await repo.get_account(conn, tenant_id, account_id)
    if row is None:
        raise common.account_not_found(account_id)
    return row


async def delete(conn: asyncpg.Connection, tenant_id: str, account_id: str) -> None:
    await fetch(conn, tenant_id, account_id)
    if await repo.account_in_use(conn, tenant_id, account_id):
        raise AppError("conflict", "the ACME account has orders; it cannot be deleted", {"id": account_id})
    await repo.delete_account(conn, tenant_id, account_id)


async def open_key(conn: asyncpg.Connection, keyring: Any, row: Mapping[str, Any]) -> bytes:
    blob = await repo.account_key(conn, row["tenant_id"], row["id"])
    if blob is None:
        raise common.account_not_found(row["id"])
    return await common.open_(keyring, blob, common.account_key_aad(row["tenant_id"], row["id"]),
                              tenant_id=row["tenant_id"], partner_id=row["partner_id"])


async def list_page(conn: asyncpg.Connection, tenant_id: str, after: str | None,
                    limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_accounts(conn, tenant_id, after, limit + 1)
    nxt = rows[limit - 1]["id"] if len(rows) > limit else None
    return [public(r) for r in rows[:limit]], nxt
