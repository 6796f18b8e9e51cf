"""Issue (server-generated key), sign (caller's CSR), and the issued certificates: list, read, PEM, revoke.

Every certificate comes from the role's CA. The request is refused (422) when the TTL exceeds the role's
``max_ttl`` or would outlive the issuing CA, when a name is outside the role (the name is in the error), or when
the key does not have the role's shape. The private key of ``issue`` is in that response only, unless the role
has ``store_private_keys`` (then it is sealed under the tenant key, AAD bound to the certificate id).
``auto_renew: true`` (roles with ``store_private_keys`` only; optional ``renew_before``) makes the certificate a
managed lineage renewed by the ``cert-renewal`` workflow (services/pki/renewal.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.context import RequestContext
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from repositories.pki import cas as ca_repo
from repositories.pki import certificates as repo
from services.pki import ca as ca_svc
from services.pki import common, crl, roles, x509

ISSUE_FIELDS = frozenset({"common_name", "alt_names", "ip_sans", "ttl", "auto_renew", "renew_before"})
SIGN_FIELDS = frozenset({"csr_pem", "common_name", "alt_names", "ip_sans", "ttl"})


@dataclass(frozen=True)
class Services:
    keyring: Any
    audit: Any
    base_url: str


def public(row: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    return {"id": row["id"], "ca_id": row["ca_id"], "role": row["role_name"], "source": row["source"],
            "serial_number": x509.serial_colon(int(row["serial_number"], 16)), "common_name": row["common_name"],
            "alt_names": repo.names_of(row, "alt_names"),  # type: ignore[arg-type]
            "ip_sans": repo.names_of(row, "ip_sans"),  # type: ignore[arg-type]
            "key_type": row["key_type"], "key_bits": row["key_bits"], "private_key_stored": row["key_stored"],
            "not_before": common.iso(row["not_before"]), "not_after": common.iso(row["not_after"]),
            "revoked": row["revoked_at"] is not None, "revoked_at": common.iso(row["revoked_at"]),
            "revocation_reason": row["revocation_reason"],
            "crl_url": common.crl_url(base_url, row["ca_id"]) if row["ca_id"] else None,  # ACME: the CA's own
            "renewed_from_id": row.get("renewed_from_id"),
            "created_at": common.iso(row["created_at"]), "created_by": row["created_by"]}


def _list(body: Mapping[str, Any], key: str) -> list[str]:
    v = body.get(key)
    if v is None:
        return []
    if isinstance(v, str):  # Vault accepts a comma-separated string
        v = [s for s in (p.strip() for p in v.split(",")) if s]
    if not isinstance(v, list) or len(v) > 100:
        raise common.validation(key, f"{key} must be a list of at most 100 strings")
    return v


def _unknown(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")


def check_ttl(role: roles.Role, value: object) -> timedelta:
    if value is None or value == "":
        ttl = role.default_ttl
    else:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise AppError("invalid_duration", "ttl must be a duration like 720h", {"field": "ttl"})
        ttl = parse_duration(value, field="ttl")
    if ttl < timedelta(seconds=60):
        raise common.validation("ttl", "ttl must be at least 1m")
    if ttl > role.max_ttl:
        raise common.validation("ttl", f"ttl {value} exceeds the role's max_ttl {role.config['max_ttl']}",
                                max_ttl=role.config["max_ttl"], role=role.name)
    return ttl


def check_key(role: roles.Role, key_type: str, bits: int) -> None:
    want = role.config.get("key_type", "rsa")
    if key_type == "rsa" and bits < 2048:
        raise common.validation("csr_pem", f"RSA keys must have at least 2048 bits, the CSR has {bits}", role=role.name)
    if want == "any":
        return
    if key_type != want:
        raise common.validation("csr_pem", f"role '{role.name}' requires {want.upper()} keys, the CSR has"
                                f" {key_type.upper()}", role=role.name)
    need = int(role.config.get("key_bits") or 0)
    if (want == "rsa" and bits < need) or (want == "ec" and bits != need):
        raise common.validation("csr_pem", f"role '{role.name}' requires {want.upper()} {need}-bit keys, the CSR"
                                f" has {bits}", role=role.name)


async def _issuing_ca(conn: asyncpg.Connection, tenant_id: str, role: roles.Role,
                      not_after: datetime) -> asyncpg.Record:
    # Locked until the certificate is stored: a concurrent revocation of this CA either runs first (and this
    # request sees the CA revoked) or waits and then revokes this certificate too. Locks are always taken
    # ancestors first, then certificates (see ca.revoke), so revocations and issuances cannot deadlock.
    ca = await ca_repo.get(conn, tenant_id, role.ca_id, for_update=True)
    if ca is None:
        raise common.ca_not_found(role.ca_id)
    if not ca_svc.is_active(ca):
        raise common.validation("role", f"the role's CA '{role.ca_id}' is revoked or expired", ca_id=role.ca_id)
    if not_after > ca["valid_until"]:
        raise common.validation("ttl", f"the certificate would outlive its issuing CA (valid until"
                                f" {common.iso(ca['valid_until'])})", ca_valid_until=common.iso(ca["valid_until"]))
    return ca


async def mint(conn: asyncpg.Connection, ctx: RequestContext, svc: Services, role: roles.Role, *,
               names: roles.Names, ttl: timedelta, public_key: x509.PublicKey, key_type: str, key_bits: int,
               source: str, private_pem: bytes | None,
               renewed_from_id: str | None = None) -> tuple[asyncpg.Record, list[str]]:
    """Sign, store and announce one leaf (inside the caller's transaction). Returns (row, ca_chain PEMs).

    ``renewed_from_id`` (internal auto-renewal, services/pki/renewal.py): the new record chains to it, the event is
    ``certificate.renewed`` (with ``old_certificate_id``) and the audit action ``pki_acme_renew`` (kind internal).
    """
    now = datetime.now(UTC)
    ca = await _issuing_ca(conn, ctx.tenant_id, role, now + ttl)
    issuer = await crl.load_issuer(conn, svc.keyring, svc.base_url, ctx.tenant_id, ctx.partner_id, ca)
    spec = x509.LeafSpec(common_name=names.common_name, dns_names=names.dns, ip_sans=names.ips,
                         not_after=now + ttl, server=role.flag("server_flag"), client=role.flag("client_flag"),
                         organization=role.config.get("organization", []), ou=role.config.get("ou", []))
    cert = await common.cpu(x509.build_leaf, spec, public_key, issuer, now=now)
    cert_id = new_id("cert")
    blob = None
    if private_pem is not None and role.flag("store_private_keys"):
        blob = await common.seal(svc.keyring, private_pem, common.cert_key_aad(ctx.tenant_id, cert_id),
                                 tenant_id=ctx.tenant_id, partner_id=ctx.partner_id)
    row = await repo.insert(conn, id=cert_id, tenant_id=ctx.tenant_id, ca_id=ca["id"], role_name=role.name,
                            source=source, serial_number=x509.serial_hex(cert.serial_number),
                            common_name=names.common_name, alt_names=names.dns, ip_sans=names.ips,
                            key_type=key_type, key_bits=key_bits, certificate_pem=x509.cert_pem(cert),
                            key_ciphertext=blob, not_before=cert.not_valid_before_utc,
                            not_after=cert.not_valid_after_utc, created_by=ctx.principal.identity_id,
                            renewed_from_id=renewed_from_id)
    await ca_repo.count_issued(conn, ctx.tenant_id, ca["id"])
    serial = x509.serial_colon(cert.serial_number)
    data = {"certificate_id": cert_id, "serial_number": serial, "common_name": names.common_name,
            "alt_names": names.dns, "ip_sans": names.ips, "not_after": common.iso(row["not_after"]),
            "ca_id": ca["id"], "role": role.name, "source": source}
    extra: dict[str, Any] = {"role": role.name, "ca_id": ca["id"], "serial_number": serial,
                             "common_name": names.common_name, "source": source}
    if renewed_from_id is not None:
        data["old_certificate_id"] = renewed_from_id
        extra.update(kind="internal", renewed_from_id=renewed_from_id)
    await common.emit(conn, "certificate.renewed" if renewed_from_id else "certificate.issued",
                      tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, identity_id=ctx.principal.identity_id,
                      data=data)
    if renewed_from_id is not None:
        action = "pki_acme_renew"
    else:
        action = "pki_issue" if source == "issue" else "pki_sign"
    ctx.describe(action, resource_type="certificate", resource_id=cert_id)
    await svc.audit.record(ctx, action=action, resource_type="certificate", resource_id=cert_id, conn=conn,
                           extra=extra)
    return row, await ca_svc.chain_pems(conn, ctx.tenant_id, ca)


def _response(row: asyncpg.Record, chain: list[str], base_url: str, private_key: str | None) -> dict[str, Any]:
    out = {**public(row, base_url), "certificate": row["certificate_pem"], "issuing_ca": chain[0],
           "ca_chain": chain}
    if private_key is not None:
        out["private_key"] = private_key
        out["private_key_type"] = row["key_type"]
    return out


async def issue(conn: asyncpg.Connection, ctx: RequestContext, svc: Services, role_name: str,
                body: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(body, ISSUE_FIELDS)
    role = roles.of_row(await roles.fetch(conn, ctx.tenant_id, role_name))
    names = roles.check_names(role, body.get("common_name"), _list(body, "alt_names"), _list(body, "ip_sans"))
    ttl = check_ttl(role, body.get("ttl"))
    auto_renew = body.get("auto_renew", False)
    if not isinstance(auto_renew, bool):
        raise common.validation("auto_renew", "auto_renew must be a boolean")
    renew_before = None
    if auto_renew:
        from services.pki import renewal

        renew_before = renewal.check_start(role, ttl, body.get("renew_before"))
    elif body.get("renew_before") is not None:
        raise common.validation("renew_before", "renew_before is only used with auto_renew: true")
    key_type = role.config.get("key_type", "rsa")
    bits = int(role.config.get("key_bits") or 0)
    if key_type == "any":  # the server picks: EC P-256
        key_type, bits = "ec", 256
    key = await common.cpu(x509.generate_key, key_type, bits)
    pem = x509.private_pem(key)
    row, chain = await mint(conn, ctx, svc, role, names=names, ttl=ttl, public_key=key.public_key(),
                            key_type=key_type, key_bits=bits, source="issue", private_pem=pem)
    out = _response(row, chain, svc.base_url, pem.decode())
    if auto_renew:  # the router starts the renewal workflow before the transaction commits
        out.update(auto_renew=True, renew_before=body.get("renew_before"), managed_certificate_id=row["id"])
        out["_renew"] = (row, renew_before)
    return out


def csr_names(role: roles.Role, parsed: x509.ParsedCsr, body: Mapping[str, Any]) -> roles.Names:
    cn = body.get("common_name") if body.get("common_name") is not None else parsed.common_name
    alt = _list(body, "alt_names") if "alt_names" in body else parsed.dns_names
    ips = _list(body, "ip_sans") if "ip_sans" in body else parsed.ip_sans
    return roles.check_names(role, cn, alt, ips)


async def sign(conn: asyncpg.Connection, ctx: RequestContext, svc: Services, role_name: str,
               body: Mapping[str, Any], *, source: str = "sign") -> dict[str, Any]:
    _unknown(body, SIGN_FIELDS)
    role = roles.of_row(await roles.fetch(conn, ctx.tenant_id, role_name))
    parsed = x509.parse_csr(body.get("csr_pem"))
    check_key(role, parsed.key_type, parsed.key_bits)
    names = csr_names(role, parsed, body)
    ttl = check_ttl(role, body.get("ttl"))
    row, chain = await mint(conn, ctx, svc, role, names=names, ttl=ttl, public_key=parsed.csr.public_key(),  # type: ignore[arg-type]
                            key_type=parsed.key_type, key_bits=parsed.key_bits, source=source, private_pem=None)
    return _response(row, chain, svc.base_url, None)


# ------------------------------------------------------------------------------------------ certificates


async def fetch(conn: asyncpg.Connection, tenant_id: str, cert_id: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await repo.get(conn, tenant_id, cert_id, for_update=for_update)
    if row is None:
        raise common.certificate_not_found(cert_id)
    return row


async def private_key(conn: asyncpg.Connection, ctx: RequestContext, svc: Services, cert_id: str) -> dict[str, Any]:
    """The stored leaf key (roles with ``store_private_keys``), audited as ``pki_private_key_read``."""
    row = await fetch(conn, ctx.tenant_id, cert_id)
    blob = await repo.key_blob(conn, ctx.tenant_id, cert_id)
    if blob is None:
        raise AppError("not_found", f"no private key is stored for certificate '{cert_id}' (its role does not store"
                       " keys, or it was signed from a CSR)", {"id": cert_id, "reason": "private_key_not_stored"})
    pem = await common.open_(svc.keyring, blob, common.cert_key_aad(ctx.tenant_id, cert_id), tenant_id=ctx.tenant_id,
                             partner_id=ctx.partner_id)
    await svc.audit.record(ctx, action="pki_private_key_read", resource_type="certificate", resource_id=cert_id,
                           extra={"serial_number": x509.serial_colon(int(row["serial_number"], 16))})
    return {"certificate_id": cert_id, "private_key": pem.decode(), "private_key_type": row["key_type"]}


async def list_certificates(conn: asyncpg.Connection, ctx: RequestContext, *, ca_id: str | None,
                            expiring_within: str | None, include_revoked: bool, after: str | None, limit: int,
                            base_url: str) -> tuple[list[dict[str, Any]], str | None]:
    before = None
    if expiring_within is not None:
        before = datetime.now(UTC) + parse_duration(expiring_within, field="expiring_within")
    rows = await repo.list_page(conn, ctx.tenant_id, ca_id=ca_id, expiring_before=before,
                                include_revoked=include_revoked, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r, base_url) for r in rows], (rows[-1]["id"] if more else None)


async def revoke(conn: asyncpg.Connection, ctx: RequestContext, svc: Services, cert_id: str,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    reason = ca_svc.revocation_reason(body)
    row = await fetch(conn, ctx.tenant_id, cert_id)
    ca = await ca_svc.fetch(conn, ctx.tenant_id, row["ca_id"], for_update=True)  # the CA first, then the certificate
    row = await fetch(conn, ctx.tenant_id, cert_id, for_update=True)
    if row["revoked_at"] is not None:
        return public(row, svc.base_url)  # idempotent: the first revocation stands
    now = datetime.now(UTC)
    await repo.revoke(conn, ctx.tenant_id, cert_id, now, reason)
    issuer = await crl.load_issuer(conn, svc.keyring, svc.base_url, ctx.tenant_id, ctx.partner_id, ca)
    await crl.rebuild(conn, issuer, ctx.tenant_id, ca["id"], now=now)
    serial = x509.serial_colon(int(row["serial_number"], 16))
    await common.emit(conn, "certificate.revoked", tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                      identity_id=ctx.principal.identity_id,
                      data={"certificate_id": cert_id, "serial_number": serial, "common_name": row["common_name"],
                            "ca_id": row["ca_id"], "reason": reason})
    await svc.audit.record(ctx, action="pki_revoke", resource_type="certificate", resource_id=cert_id, conn=conn,
                           extra={"reason": reason, "serial_number": serial, "ca_id": row["ca_id"]})
    return public(await fetch(conn, ctx.tenant_id, cert_id), svc.base_url)
