"""Auto-renewal of internal-CA certificates (issue 16 item 4, the mTLS tutorial's 7-day leaf).

``POST /v1/pki/issue/{role}`` with ``auto_renew: true`` (optional ``renew_before``) starts the same
``cert-renewal/<tenant>/<cert>`` workflow as ACME lineages (workflows/acme.py) with ``kind = "internal"``. At the
renewal point it calls :func:`renew`, which re-issues through :func:`services.pki.issuance.mint` with the same
role, names and lifetime and a **new key**, sealed under the tenant key (only roles with ``store_private_keys``
may auto-renew: the new key must be retrievable through ``GET /v1/pki/certificates/{id}/private-key``). The new
record chains ``renewed_from_id``; the event is ``certificate.renewed``; the audit action ``pki_acme_renew``
(``extra.kind = "internal"``), success or failure with the error.

Failures are classified before anything is signed (:data:`FAILURE_CODES`) so the workflow query and the audit
entry name the cause.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from audit.recorder import system_context
from core.errors import AppError
from repositories.pki import cas as ca_repo
from repositories.pki import certificates as repo
from services.pki import common, issuance, roles, x509

SYSTEM_JOB = "pki-renewer"
# Codes the renewal reports (workflow query ``last_error.code`` and the audit entry's ``error_code``)
FAILURE_CODES = frozenset({
    "renewal_role_deleted",       # the certificate's role no longer exists
    "renewal_ca_revoked",         # the role's CA (or the CA it was issued by) is revoked
    "renewal_ca_expired",         # the role's CA has expired
    "renewal_ttl_exceeds_issuer",  # the lifetime would outlive the CA, or exceeds the role's max_ttl now
    "renewal_names_not_allowed",  # the role no longer allows the certificate's names
    "renewal_key_not_storable",   # the role stopped storing private keys: nobody could receive the new key
    "renewal_certificate_revoked",  # the lineage's current certificate was revoked: renewal stops
})


class RenewalFailure(Exception):
    """A classified renewal failure (code in FAILURE_CODES); reported by the worker, never answered over HTTP."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def _fail(code: str, message: str, **details: Any) -> RenewalFailure:
    return RenewalFailure(code, message, details)


def lifetime(row: Any) -> timedelta:
    """The TTL the certificate was issued with (notBefore is backdated by x509.BACKDATE for clock skew)."""
    return timedelta(seconds=round((row["not_after"] - row["not_before"] - x509.BACKDATE).total_seconds()))


def check_start(role: roles.Role, ttl: timedelta, renew_before: object) -> float | None:
    """Validate ``auto_renew`` / ``renew_before`` of an issue request. Returns renew_before in seconds."""
    if not role.flag("store_private_keys"):
        raise common.validation("auto_renew", f"role '{role.name}' does not store private keys, so nobody could"
                                " receive the key of a renewed certificate; enable store_private_keys on the role"
                                " or renew by calling issue again", role=role.name)
    if renew_before is None:
        return None
    from core.durations import parse_duration

    if not isinstance(renew_before, str):
        raise common.validation("renew_before", "renew_before must be a duration such as 48h")
    rb = parse_duration(renew_before, field="renew_before")
    if not timedelta(seconds=1) <= rb < ttl:
        raise common.validation("renew_before", "renew_before must be at least 1s and shorter than the ttl",
                                ttl_seconds=int(ttl.total_seconds()))
    return rb.total_seconds()


async def _classify_preflight(conn: asyncpg.Connection, tenant_id: str, cur: Any, ttl: timedelta) -> roles.Role:
    try:
        role = roles.of_row(await roles.fetch(conn, tenant_id, cur["role_name"]))
    except AppError as exc:
        if exc.code != "role_not_found":
            raise
        raise _fail("renewal_role_deleted", f"role '{cur['role_name']}' was deleted; re-create it (same name) and"
                    " send renew", role=cur["role_name"]) from None
    if not role.flag("store_private_keys"):
        raise _fail("renewal_key_not_storable", f"role '{role.name}' no longer stores private keys", role=role.name)
    now = datetime.now(UTC)
    for ca_id in dict.fromkeys([role.ca_id, cur["ca_id"]]):
        ca = await ca_repo.get(conn, tenant_id, ca_id)
        if ca is None:
            raise _fail("renewal_ca_revoked", f"CA '{ca_id}' no longer exists", ca_id=ca_id)
        if ca["revoked_at"] is not None:
            raise _fail("renewal_ca_revoked", f"CA '{ca_id}' is revoked", ca_id=ca_id)
        if ca["valid_until"] <= now:
            raise _fail("renewal_ca_expired", f"CA '{ca_id}' expired at {common.iso(ca['valid_until'])}",
                        ca_id=ca_id)
        if ca_id == role.ca_id and now + ttl > ca["valid_until"]:
            raise _fail("renewal_ttl_exceeds_issuer", f"a {int(ttl.total_seconds())}s certificate would outlive"
                        f" CA '{ca_id}' (valid until {common.iso(ca['valid_until'])})", ca_id=ca_id)
    if cur["revoked_at"] is not None:  # after the CA checks: a revoked CA revokes its leaves too
        raise _fail("renewal_certificate_revoked", f"certificate '{cur['id']}' was revoked; it is not renewed",
                    certificate_id=cur["id"])
    if ttl > role.max_ttl:
        raise _fail("renewal_ttl_exceeds_issuer", f"the certificate's lifetime exceeds role '{role.name}' max_ttl"
                    f" {role.config['max_ttl']}", role=role.name)
    return role


async def renew(conn: asyncpg.Connection, keyring: Any, audit: Any, base_url: str, tenant_id: str,
                from_id: str, workflow_id: str | None) -> asyncpg.Record:
    """Re-issue ``from_id`` (inside the caller's transaction). Idempotent: a retried activity whose first try
    committed gets the stored renewal back."""
    # One renewal of a certificate at a time (a retried activity racing a slow first try), without a row lock on
    # the certificate: mint locks the CA, and CA revocation locks CA first, then certificates (no deadlock).
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"pki-renew:{tenant_id}:{from_id}")
    cur = await repo.get(conn, tenant_id, from_id)
    if cur is None:
        raise _fail("renewal_certificate_revoked", f"certificate '{from_id}' no longer exists",
                    certificate_id=from_id)
    done = await repo.renewal_of(conn, tenant_id, from_id)
    if done is not None:
        return done
    ttl = lifetime(cur)
    role = await _classify_preflight(conn, tenant_id, cur, ttl)
    try:
        names = roles.check_names(role, cur["common_name"], repo.names_of(cur, "alt_names"),
                                  repo.names_of(cur, "ip_sans"))
    except AppError as exc:
        raise _fail("renewal_names_not_allowed", f"role '{role.name}' no longer allows the names: {exc.message}",
                    role=role.name) from None
    key_type, bits = cur["key_type"], int(cur["key_bits"])
    want = role.config.get("key_type", "rsa")
    if want != "any" and want != key_type:
        key_type, bits = want, int(role.config.get("key_bits") or 0)
    key = await common.cpu(x509.generate_key, key_type, bits)
    pem = x509.private_pem(key)
    partner_id = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1", tenant_id)
    ctx = system_context(SYSTEM_JOB, tenant_id, partner_id=partner_id, workflow_id=workflow_id)
    svc = issuance.Services(keyring=keyring, audit=audit, base_url=base_url)
    row, _ = await issuance.mint(conn, ctx, svc, role, names=names, ttl=ttl, public_key=key.public_key(),
                                 key_type=key_type, key_bits=bits, source="issue", private_pem=pem,
                                 renewed_from_id=from_id)
    return row


async def record_failure(conn: asyncpg.Connection, audit: Any, tenant_id: str, managed_id: str, from_id: str,
                         code: str, message: str, attempt: int, final: bool, workflow_id: str | None) -> None:
    partner_id = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1", tenant_id)
    ctx = system_context(SYSTEM_JOB, tenant_id, partner_id=partner_id, workflow_id=workflow_id)
    await audit.record(ctx, action="pki_acme_renew", success=False, error_code=code, resource_type="certificate",
                       resource_id=from_id, conn=conn,
                       extra={"kind": "internal", "managed_certificate_id": managed_id, "attempt": attempt,
                              "error": message[:300], "gave_up": final})

