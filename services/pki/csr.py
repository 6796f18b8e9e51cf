"""The CSR approval workflow: a requester keeping its own key submits a CSR against a role; an approver (scope
``pki:admin``) approves (the CSR is signed against the role, as ``sign`` would) or rejects it. The CSR is validated
against the role at submission and again at approval (the role may have changed); the approver's identity is in
the CSR, the audit entry and the certificate.issued event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories.pki import csrs as repo
from services.pki import common, issuance, roles, x509

SUBMIT_FIELDS = frozenset({"role", "csr_pem", "ttl", "common_name", "alt_names", "ip_sans"})


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    import orjson

    def names(v: Any) -> list[str]:
        return orjson.loads(v) if isinstance(v, str | bytes) else list(v)

    return {"id": row["id"], "role": row["role_name"], "status": row["status"], "common_name": row["common_name"],
            "alt_names": names(row["names"]), "ip_sans": names(row["ip_sans"]), "ttl": row["ttl"],
            "csr_pem": row["csr_pem"], "requested_by": row["requested_by"], "decided_by": row["decided_by"],
            "decided_at": common.iso(row["decided_at"]), "decision_reason": row["decision_reason"],
            "certificate_id": row["certificate_id"], "created_at": common.iso(row["created_at"])}


async def fetch(conn: asyncpg.Connection, tenant_id: str, csr_id: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await repo.get(conn, tenant_id, csr_id, for_update=for_update)
    if row is None:
        raise common.csr_not_found(csr_id)
    return row


def _body_for_sign(row: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"csr_pem": row["csr_pem"]}
    if row["ttl"] is not None:
        body["ttl"] = row["ttl"]
    return body


async def submit(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], audit: Any) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in SUBMIT_FIELDS)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    role_name = body.get("role")
    if not isinstance(role_name, str) or not role_name:
        raise common.validation("role", "role is required")
    role = roles.of_row(await roles.fetch(conn, ctx.tenant_id, role_name))
    parsed = x509.parse_csr(body.get("csr_pem"))
    issuance.check_key(role, parsed.key_type, parsed.key_bits)
    names = issuance.csr_names(role, parsed, body)
    ttl = body.get("ttl")
    if ttl is not None:
        issuance.check_ttl(role, ttl)
        ttl = str(ttl)
    csr_id = new_id("csr")
    row = await repo.insert(conn, id=csr_id, tenant_id=ctx.tenant_id, role_name=role.name,
                            csr_pem=str(body["csr_pem"]).strip() + "\n", common_name=names.common_name,
                            names=names.dns, ip_sans=names.ips, ttl=ttl, requested_by=ctx.principal.identity_id)
    ctx.describe("pki_csr_submit", resource_type="pki_csr", resource_id=csr_id)
    await audit.record(ctx, action="pki_csr_submit", resource_type="pki_csr", resource_id=csr_id, conn=conn,
                       extra={"role": role.name, "common_name": names.common_name})
    return public(row)


async def list_csrs(conn: asyncpg.Connection, ctx: RequestContext, *, status: str | None, after: str | None,
                    limit: int) -> tuple[list[dict[str, Any]], str | None]:
    if status is not None and status not in ("pending", "approved", "rejected"):
        raise common.validation("status", "status must be pending, approved or rejected")
    rows = await repo.list_page(conn, ctx.tenant_id, status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


def _pending(row: Mapping[str, Any]) -> None:
    if row["status"] != "pending":
        raise AppError("conflict", f"CSR '{row['id']}' was already {row['status']}",
                       {"id": row["id"], "status": row["status"]})


async def approve(conn: asyncpg.Connection, ctx: RequestContext, svc: issuance.Services, csr_id: str,
                  body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k != "reason")
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    row = await fetch(conn, ctx.tenant_id, csr_id, for_update=True)
    _pending(row)
    issued = await issuance.sign(conn, ctx, svc, row["role_name"], _body_for_sign(row), source="csr")
    decided = await repo.decide(conn, ctx.tenant_id, csr_id, status="approved", decided_by=ctx.principal.identity_id,
                                reason=_reason(body), certificate_id=issued["id"])
    await svc.audit.record(ctx, action="pki_csr_approve", resource_type="pki_csr", resource_id=csr_id, conn=conn,
                           extra={"certificate_id": issued["id"], "requested_by": row["requested_by"],
                                  "approved_by": ctx.principal.identity_id})
    return {**public(decided), "certificate": issued}


def _reason(body: Mapping[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1024 or not reason.isprintable()):
        raise common.validation("reason", "reason must be at most 1024 printable characters")
    return reason


async def reject(conn: asyncpg.Connection, ctx: RequestContext, csr_id: str, body: Mapping[str, Any],
                 audit: Any) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k != "reason")
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    reason = _reason(body)
    row = await fetch(conn, ctx.tenant_id, csr_id, for_update=True)
    _pending(row)
    decided = await repo.decide(conn, ctx.tenant_id, csr_id, status="rejected", decided_by=ctx.principal.identity_id,
                                reason=reason, certificate_id=None)
    await audit.record(ctx, action="pki_csr_reject", resource_type="pki_csr", resource_id=csr_id, conn=conn,
                       extra={"requested_by": row["requested_by"], "rejected_by": ctx.principal.identity_id})
    return public(decided)
