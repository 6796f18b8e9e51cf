"""Certificate authorities: create (root or intermediate, same tenant only), read, list, revoke (cascading).

The CA's private key is generated here, sealed under the tenant key with AAD bound to (tenant, CA id) and never
returned by any route.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories.pki import cas as repo
from repositories.pki import certificates as cert_repo
from services.pki import common, crl, x509

_CREATE_KEYS = frozenset({"name", "common_name", "ca_type", "parent_ca_id", "key_type", "key_size", "validity_days",
                          "max_path_length"})
DEFAULT_VALIDITY = {"root": 3650, "intermediate": 1825}
DEFAULT_KEY_SIZE = {"rsa": 2048, "ec": 256}


def is_active(row: Mapping[str, Any], now: datetime | None = None) -> bool:
    return row["revoked_at"] is None and row["valid_until"] > (now or datetime.now(UTC))


def public(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "common_name": row["common_name"], "ca_type": row["ca_type"],
            "parent_ca_id": row["parent_ca_id"], "key_type": row["key_type"], "key_size": row["key_size"],
            "serial_number": x509.serial_colon(int(row["serial_number"], 16)),
            "valid_from": common.iso(row["valid_from"]), "valid_until": common.iso(row["valid_until"]),
            "is_active": is_active(row), "revoked_at": common.iso(row["revoked_at"]),
            "revocation_reason": row["revocation_reason"], "certificates_issued": row["certificates_issued"],
            "crl_url": common.crl_url(base_url, row["id"]), "crl_next_update": common.iso(row["crl_next_update"]),
            "created_at": common.iso(row["created_at"]), "created_by": row["created_by"]}


async def fetch(conn: asyncpg.Connection, tenant_id: str, ca_id: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await repo.get(conn, tenant_id, ca_id, for_update=for_update)
    if row is None:
        raise common.ca_not_found(ca_id)
    return row


def _int(body: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = body.get(key, default)
    if v is None:
        v = default
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise common.validation(key, f"{key} must be an integer from {lo} to {hi}")
    return v


def _text(body: Mapping[str, Any], key: str, max_len: int) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip() or len(v) > max_len or not v.isprintable():
        raise common.validation(key, f"{key} is required: 1-{max_len} printable characters")
    return v.strip()


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], *, keyring: Any,
                 audit: Any, base_url: str) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in _CREATE_KEYS)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    name = common.check_name(body.get("name"))
    common_name = _text(body, "common_name", 64)
    ca_type = body.get("ca_type")
    if ca_type not in ("root", "intermediate"):
        raise common.validation("ca_type", "ca_type must be 'root' or 'intermediate'")
    key_type = body.get("key_type") or "rsa"
    if key_type not in ("rsa", "ec"):
        raise common.validation("key_type", f"unsupported key type {key_type!r}: use 'rsa' or 'ec'")
    key_size = _int(body, "key_size", DEFAULT_KEY_SIZE[key_type], 1, 16384)
    x509.check_key_shape(key_type, key_size, ca=True)
    validity = _int(body, "validity_days", DEFAULT_VALIDITY[ca_type], 1, 36500)
    parent_id = body.get("parent_ca_id")
    issuer: x509.Issuer | None = None
    path_length: int | None = None
    now = datetime.now(UTC)
    if ca_type == "root":
        if parent_id is not None:
            raise common.validation("parent_ca_id", "a root CA has no parent_ca_id")
        if "max_path_length" in body and body["max_path_length"] is not None:
            path_length = _int(body, "max_path_length", 0, 0, 16)
    else:
        if not isinstance(parent_id, str) or not parent_id:
            raise common.validation("parent_ca_id", "an intermediate CA needs parent_ca_id")
        parent = await repo.get(conn, ctx.tenant_id, parent_id, for_update=True)
        if parent is None:  # another tenant's CA is a missing CA
            raise common.ca_not_found(parent_id)
        if parent["revoked_at"] is not None:
            raise common.validation("parent_ca_id", f"parent CA '{parent_id}' is revoked", parent_ca_id=parent_id)
        if parent["valid_until"] <= now + timedelta(minutes=1):
            raise common.validation("parent_ca_id", f"parent CA '{parent_id}' has expired", parent_ca_id=parent_id)
        issuer = await crl.load_issuer(conn, keyring, base_url, ctx.tenant_id, ctx.partner_id, parent)
        limit = x509.path_length(issuer.cert)
        if limit is not None and limit < 1:
            raise common.validation("parent_ca_id", f"parent CA '{parent_id}' may not sign further CAs"
                                    " (its path length is 0)", parent_ca_id=parent_id)
        path_length = _int(body, "max_path_length", 0, 0, 16 if limit is None else max(0, limit - 1))
    ca_id = new_id("ca")
    key = await common.cpu(x509.generate_key, key_type, key_size)
    cert = await common.cpu(x509.build_ca, common_name=common_name, key=key, validity=timedelta(days=validity),
                            issuer=issuer, path_length=path_length, now=now)
    blob = await common.seal(keyring, x509.private_pem(key), common.ca_key_aad(ctx.tenant_id, ca_id),
                             tenant_id=ctx.tenant_id, partner_id=ctx.partner_id)
    try:
        async with conn.transaction():
            row = await repo.insert(conn, id=ca_id, tenant_id=ctx.tenant_id, partner_id=common.partner_of(
                ctx.partner_id), name=name, common_name=common_name, ca_type=ca_type,
                parent_ca_id=parent_id if ca_type == "intermediate" else None, key_type=key_type,
                key_size=key_size, serial_number=x509.serial_hex(cert.serial_number),
                certificate_pem=x509.cert_pem(cert), key_ciphertext=blob, valid_from=cert.not_valid_before_utc,
                valid_until=cert.not_valid_after_utc, created_by=ctx.principal.identity_id)
    except asyncpg.UniqueViolationError:
        raise AppError("conflict", f"a CA named '{name}' already exists", {"field": "name", "name": name}) from None
    own = x509.Issuer(cert=cert, key=key, crl_url=common.crl_url(base_url, ca_id))
    await crl.rebuild(conn, own, ctx.tenant_id, ca_id)
    row = await fetch(conn, ctx.tenant_id, ca_id)
    ctx.describe("pki_ca_create", resource_type="pki_ca", resource_id=ca_id)
    await audit.record(ctx, action="pki_ca_create", resource_type="pki_ca", resource_id=ca_id, conn=conn,
                       extra={"name": name, "ca_type": ca_type, "parent_ca_id": row["parent_ca_id"],
                              "key_type": key_type, "key_size": key_size})
    return public(row, base_url)


async def list_cas(conn: asyncpg.Connection, ctx: RequestContext, *, after: str | None, limit: int,
                   base_url: str) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_page(conn, ctx.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r, base_url) for r in rows], (rows[-1]["id"] if more else None)


async def chain_pems(conn: asyncpg.Connection, tenant_id: str, ca: Mapping[str, Any]) -> list[str]:
    """The CA's certificate and its parents', issuer first (root last)."""
    out = [ca["certificate_pem"]]
    parent = ca["parent_ca_id"]
    while parent is not None and len(out) < 16:
        row = await repo.get(conn, tenant_id, parent)
        if row is None:
            break
        out.append(row["certificate_pem"])
        parent = row["parent_ca_id"]
    return out


async def revoke(conn: asyncpg.Connection, ctx: RequestContext, ca_id: str, body: Mapping[str, Any], *,
                 keyring: Any, audit: Any, base_url: str) -> dict[str, Any]:
    reason = revocation_reason(body)
    ca = await fetch(conn, ctx.tenant_id, ca_id)
    for ancestor in reversed(await _ancestors(conn, ctx.tenant_id, ca)):  # lock order: root first, then down
        await repo.get(conn, ctx.tenant_id, ancestor, for_update=True)
    ca = await fetch(conn, ctx.tenant_id, ca_id, for_update=True)
    if ca["revoked_at"] is not None:
        return public(ca, base_url)  # idempotent
    now = datetime.now(UTC)
    tree = await repo.descendants(conn, ctx.tenant_id, ca_id)
    ids = [r["id"] for r in tree]
    await repo.mark_revoked(conn, ctx.tenant_id, ids, now, reason)
    leaves = await cert_repo.revoke_under(conn, ctx.tenant_id, ids, now, reason)
    for leaf in leaves:
        await common.emit(conn, "certificate.revoked", tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                          identity_id=ctx.principal.identity_id,
                          data={"certificate_id": leaf["id"], "ca_id": leaf["ca_id"],
                                "serial_number": x509.serial_colon(int(leaf["serial_number"], 16)),
                                "common_name": leaf["common_name"], "reason": reason, "revoked_with_ca": ca_id})
    # CRLs: the parent's now lists this CA; each revoked CA's lists everything it signed.
    to_rebuild = ([ca["parent_ca_id"]] if ca["parent_ca_id"] else []) + ids
    for rid in to_rebuild:
        row = await fetch(conn, ctx.tenant_id, rid)
        issuer = await crl.load_issuer(conn, keyring, base_url, ctx.tenant_id, ctx.partner_id, row)
        await crl.rebuild(conn, issuer, ctx.tenant_id, rid, now=now)
    await audit.record(ctx, action="pki_revoke", resource_type="pki_ca", resource_id=ca_id, conn=conn,
                       extra={"reason": reason, "cas_revoked": len(ids), "certificates_revoked": len(leaves)})
    return public(await fetch(conn, ctx.tenant_id, ca_id), base_url)


async def _ancestors(conn: asyncpg.Connection, tenant_id: str, ca: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    parent = ca["parent_ca_id"]
    while parent is not None and len(out) < 16:
        out.append(parent)
        row = await repo.get(conn, tenant_id, parent)
        parent = row["parent_ca_id"] if row is not None else None
    return out


def revocation_reason(body: Mapping[str, Any]) -> str:
    unknown = sorted(str(k) for k in body if k != "reason")
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    reason = body.get("reason", "unspecified")
    if reason is None:
        reason = "unspecified"
    if not isinstance(reason, str) or reason not in x509.REASONS:
        raise common.validation("reason", f"reason must be an RFC 5280 reason: {sorted(x509.REASONS)}",
                                allowed=sorted(x509.REASONS))
    return str(reason)
