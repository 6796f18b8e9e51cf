"""Trust anchors: external CA certificates a tenant trusts (spec lifecycle.md §3.1). Only CA certificates
(basicConstraints CA=true) are accepted; the same certificate twice is a 409."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from cryptography import x509 as cx509

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories.pki import trust_anchors as repo
from services.pki import common, x509

FIELDS = frozenset({"name", "certificate_pem"})


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "subject": row["subject"], "issuer": row["issuer"],
            "fingerprint_sha256": row["fingerprint_sha256"], "not_before": common.iso(row["not_before"]),
            "not_after": common.iso(row["not_after"]), "certificate_pem": row["certificate_pem"],
            "created_at": common.iso(row["created_at"]), "created_by": row["created_by"]}


async def fetch(conn: asyncpg.Connection, tenant_id: str, anchor_id: str) -> asyncpg.Record:
    row = await repo.get(conn, tenant_id, anchor_id)
    if row is None:
        raise common.trust_anchor_not_found(anchor_id)
    return row


def _parse(pem: object) -> tuple[cx509.Certificate, str, str]:
    """(certificate, subject, issuer); anything unparsable is a 422 here rather than a 500 later."""
    if not isinstance(pem, str) or not pem.strip() or len(pem) > 64 * 1024:
        raise common.validation("certificate_pem", "a PEM-encoded CA certificate is required")
    try:
        cert = cx509.load_pem_x509_certificate(pem.strip().encode())
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        bc = cert.extensions.get_extension_for_class(cx509.BasicConstraints).value
    except cx509.ExtensionNotFound:
        raise common.validation("certificate_pem", "the certificate is not a CA certificate"
                                " (no basicConstraints)") from None
    except (ValueError, TypeError):
        raise common.validation("certificate_pem", "not a valid PEM-encoded X.509 certificate") from None
    if not bc.ca:
        raise common.validation("certificate_pem", "the certificate is not a CA certificate (basicConstraints CA=false)")
    return cert, subject, issuer


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], audit: Any) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in FIELDS)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    name = common.check_name(body.get("name"))
    cert, subject, issuer = _parse(body.get("certificate_pem"))
    fp = x509.fingerprint(cert)
    try:
        async with conn.transaction():
            row = await repo.insert(conn, id=new_id("ta"), tenant_id=ctx.tenant_id, name=name,
                                    certificate_pem=x509.cert_pem(cert), subject=subject, issuer=issuer,
                                    fingerprint_sha256=fp,
                                    not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                                    created_by=ctx.principal.identity_id)
    except asyncpg.UniqueViolationError:
        raise AppError("conflict", "a trust anchor with this name or certificate already exists",
                       {"field": "name", "name": name, "fingerprint_sha256": fp}) from None
    ctx.describe("pki_trust_anchor_create", resource_type="pki_trust_anchor", resource_id=row["id"])
    await audit.record(ctx, action="pki_trust_anchor_create", resource_type="pki_trust_anchor", resource_id=row["id"],
                       conn=conn, extra={"name": name, "fingerprint_sha256": fp})
    return public(row)


async def list_anchors(conn: asyncpg.Connection, ctx: RequestContext, *, after: str | None,
                       limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_page(conn, ctx.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


async def delete(conn: asyncpg.Connection, ctx: RequestContext, anchor_id: str, audit: Any) -> None:
    row = await fetch(conn, ctx.tenant_id, anchor_id)
    await repo.delete(conn, ctx.tenant_id, anchor_id)
    await audit.record(ctx, action="pki_trust_anchor_delete", resource_type="pki_trust_anchor", resource_id=anchor_id,
                       conn=conn, extra={"name": row["name"], "fingerprint_sha256": row["fingerprint_sha256"]})
