"""DNS providers (lifecycle.md §3.7): CRUD, ``verify`` on create, ``test`` (zones visible + latency). Credentials
are sealed under the tenant key (AAD bound to tenant + provider id) and never echoed; adapter errors are
``dns_provider_error`` with a message that names the operation, never a credential."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories import acme as repo
from services.acme import common
from services.acme.dns import SUPPORTED, DnsAdapter, DnsError, adapter
from services.acme.dns.base import KNOWN_UNSUPPORTED

_CREATE = frozenset({"name", "provider_type", "credentials", "config", "managed_zones", "verify", "is_active"})
_PATCH = frozenset({"name", "credentials", "config", "managed_zones", "is_active", "verify"})
_CRED_MAX = 16384


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "provider_type": row["provider_type"],
            "config": repo.jsonval(row, "config"),  # type: ignore[arg-type]
            "managed_zones": repo.jsonval(row, "managed_zones"),  # type: ignore[arg-type]
            "is_active": row["is_active"], "created_at": common.iso(row["created_at"]),
            "updated_at": common.iso(row["updated_at"]), "created_by": row["created_by"]}


def dns_error(exc: DnsError) -> AppError:
    return AppError("dns_provider_error", str(exc)[:300])


def _unknown(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s): {', '.join(unknown)}")


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = body.get(key, {})
    if not isinstance(v, dict) or len(orjson.dumps(v)) > _CRED_MAX:
        raise common.validation(key, f"{key} must be an object (at most {_CRED_MAX} bytes)")
    if key == "credentials" and not all(isinstance(x, str | int | bool) or x is None for x in v.values()):
        raise common.validation(key, "credential values must be strings")
    return v


def _zones(body: Mapping[str, Any]) -> list[str]:
    v = body.get("managed_zones")
    if not isinstance(v, list) or not v or len(v) > 100:
        raise common.validation("managed_zones", "managed_zones must list 1-100 zones")
    return list(dict.fromkeys(common.check_domain(z, "managed_zones") for z in v))


def _type(value: object) -> str:
    if value not in SUPPORTED:
        known = "a known type not supported by this build" if value in KNOWN_UNSUPPORTED else "unknown"
        raise common.validation("provider_type", f"provider_type '{value}' is {known}; supported: "
                                                 f"{', '.join(SUPPORTED)}", supported=list(SUPPORTED))
    return str(value)


def _adapter(provider_type: str, credentials: dict[str, Any], config: dict[str, Any]) -> DnsAdapter:
    try:
        return adapter(provider_type, credentials, config)
    except DnsError as exc:
        raise common.validation("credentials", str(exc)) from None


async def _verify(a: DnsAdapter) -> list[str]:
    try:
        return await a.zones()
    except DnsError as exc:
        raise AppError("dns_provider_error", f"the credentials failed verification: {exc}"[:300],
                       {"verify": False}) from None


async def create(conn: asyncpg.Connection, ctx: RequestContext, keyring: Any,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(body, _CREATE)
    name = common.check_name(body.get("name"))
    ptype = _type(body.get("provider_type"))
    creds, config, zones = _object(body, "credentials"), _object(body, "config"), _zones(body)
    verify, active = body.get("verify", True), body.get("is_active", True)
    if not isinstance(verify, bool) or not isinstance(active, bool):
        raise common.validation("verify", "verify and is_active must be booleans")
    a = _adapter(ptype, creds, {**config, "zones": zones})
    if verify:
        await _verify(a)
    if await conn.fetchval("SELECT 1 FROM dns_providers WHERE tenant_id = $1 AND name = $2", ctx.tenant_id, name):
        raise AppError("conflict", f"a DNS provider named '{name}' exists", {"name": name})
    pid = new_id("dnsp")
    blob = await common.seal(keyring, orjson.dumps(creds), common.dns_credentials_aad(ctx.tenant_id, pid),
                             tenant_id=ctx.tenant_id, partner_id=ctx.partner_id)
    row = await repo.insert_provider(conn, id=pid, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, name=name,
                                     provider_type=ptype, config=config, managed_zones=zones,
                                     credentials_ciphertext=blob, created_by=ctx.principal.identity_id)
    if not active:
        row = await repo.update_provider(conn, ctx.tenant_id, pid, name=name, config=config, managed_zones=zones,
                                         is_active=False, credentials_ciphertext=None)
    return public(row)  # type: ignore[arg-type]


async def fetch(conn: asyncpg.Connection, tenant_id: str, provider_id: str) -> asyncpg.Record:
    row = await repo.get_provider(conn, tenant_id, provider_id)
    if row is None:
        raise common.provider_not_found(provider_id)
    return row


async def open_adapter(conn: asyncpg.Connection, keyring: Any, row: Mapping[str, Any]) -> DnsAdapter:
    blob = await repo.provider_credentials(conn, row["tenant_id"], row["id"])
    if blob is None:
        raise common.provider_not_found(row["id"])
    creds = orjson.loads(await common.open_(keyring, blob, common.dns_credentials_aad(row["tenant_id"], row["id"]),
                                            tenant_id=row["tenant_id"], partner_id=row["partner_id"]))
    try:
        return adapter(row["provider_type"], creds, {**repo.jsonval(row, "config"),  # type: ignore[dict-item]
                                                     "zones": repo.jsonval(row, "managed_zones")})
    except DnsError as exc:
        raise dns_error(exc) from None


async def update(conn: asyncpg.Connection, ctx: RequestContext, keyring: Any, provider_id: str,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(body, _PATCH)
    row = await fetch(conn, ctx.tenant_id, provider_id)
    name = common.check_name(body["name"]) if "name" in body else row["name"]
    config = _object(body, "config") if "config" in body else repo.jsonval(row, "config")
    zones = _zones(body) if "managed_zones" in body else repo.jsonval(row, "managed_zones")
    active = body.get("is_active", row["is_active"])
    if not isinstance(active, bool):
        raise common.validation("is_active", "is_active must be a boolean")
    blob = None
    if "credentials" in body:
        creds = _object(body, "credentials")
        a = _adapter(row["provider_type"], creds, {**config, "zones": zones})
        if body.get("verify", True):
            await _verify(a)
        blob = await common.seal(keyring, orjson.dumps(creds), common.dns_credentials_aad(ctx.tenant_id, provider_id),
                                 tenant_id=ctx.tenant_id, partner_id=row["partner_id"])
    if name != row["name"] and await conn.fetchval(
            "SELECT 1 FROM dns_providers WHERE tenant_id = $1 AND name = $2", ctx.tenant_id, name):
        raise AppError("conflict", f"a DNS provider named '{name}' exists", {"name": name})
    out = await repo.update_provider(conn, ctx.tenant_id, provider_id, name=name, config=config,
                                     managed_zones=zones, is_active=active, credentials_ciphertext=blob)
    return public(out)  # type: ignore[arg-type]


async def delete(conn: asyncpg.Connection, tenant_id: str, provider_id: str) -> None:
    await fetch(conn, tenant_id, provider_id)
    if await repo.provider_in_use(conn, tenant_id, provider_id):
        raise AppError("conflict", "the DNS provider is used by an open or auto-renewed order", {"id": provider_id})
    await repo.delete_provider(conn, tenant_id, provider_id)


async def test(conn: asyncpg.Connection, ctx: RequestContext, keyring: Any, provider_id: str) -> dict[str, Any]:
    row = await fetch(conn, ctx.tenant_id, provider_id)
    a = await open_adapter(conn, keyring, row)
    started = time.monotonic()
    try:
        zones = await a.zones()
    except DnsError as exc:
        return {"ok": False, "zones_visible": [], "latency_ms": round((time.monotonic() - started) * 1000),
                "error": {"code": "dns_provider_error", "message": str(exc)[:300]}}
    return {"ok": True, "zones_visible": zones, "latency_ms": round((time.monotonic() - started) * 1000),
            "error": None}


async def list_page(conn: asyncpg.Connection, tenant_id: str, after: str | None,
                    limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_providers(conn, tenant_id, after, limit + 1)
    nxt = rows[limit - 1]["id"] if len(rows) > limit else None
    return [public(r) for r in rows[:limit]], nxt
