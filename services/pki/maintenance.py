"""PKI background work, run by the ``pki`` maintenance workflow (workflows/pki.py) on a Temporal Schedule:

* ``certificate.expiring`` at each threshold (30, 7 and 1 days before ``notAfter``), exactly once: the event and
  its ``pki_expiry_notices`` row commit together, rows are locked with SKIP LOCKED, and a certificate that first
  appears inside several thresholds gets only the tightest (a 5-day certificate: the 7-day notice, then the 1-day);
* CRLs whose ``nextUpdate`` is less than ``REBUILD_BEFORE`` away are rebuilt (services/pki/crl.py);
* the ``scaivault_certificates_*`` gauges (also refreshed at scrape time by the API).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg

from core.errors import AppError
from repositories.pki import cas as ca_repo
from repositories.pki import certificates as cert_repo
from services.pki import common, crl, x509

THRESHOLDS_DAYS = (30, 7, 1)
SYSTEM_IDENTITY = "system:pki-maintenance"
log = logging.getLogger("scaivault.pki")


async def _partner(conn: asyncpg.Connection, tenant_id: str, fallback: str | None) -> str | None:
    """The tenant's current partner (a tenant may have moved since the row was written)."""
    value = await conn.fetchval("SELECT partner_id FROM tenants WHERE id = $1", tenant_id)
    return value or fallback  # type: ignore[no-any-return]


async def emit_expiring(conn: asyncpg.Connection, *, now: datetime | None = None,
                        thresholds: tuple[int, ...] = THRESHOLDS_DAYS, limit: int = 500) -> int:
    """One batch per threshold (tightest first); returns how many events were emitted."""
    now = now or datetime.now(UTC)
    emitted = 0
    for days in sorted(thresholds):
        async with conn.transaction():
            rows = await cert_repo.expiring_unnotified(conn, days, now, limit)
            for r in rows:
                if not await cert_repo.record_notice(conn, r["id"], days):
                    continue
                partner = await _partner(conn, r["tenant_id"], r["partner_id"])
                remaining = max(0, (r["not_after"] - now).days)
                await common.emit(conn, "certificate.expiring", tenant_id=r["tenant_id"], partner_id=partner,
                                  identity_id=SYSTEM_IDENTITY,
                                  data={"certificate_id": r["id"], "ca_id": r["ca_id"],
                                        "serial_number": x509.serial_colon(int(r["serial_number"], 16)),
                                        "common_name": r["common_name"],
                                        "alt_names": cert_repo.names_of(r, "alt_names"),
                                        "not_after": common.iso(r["not_after"]), "threshold_days": days,
                                        "days_remaining": remaining})
                emitted += 1
    return emitted


async def rebuild_due_crls(conn: asyncpg.Connection, keyring: Any, base_url: str, *, now: datetime | None = None,
                           limit: int = 100) -> int:
    now = now or datetime.now(UTC)
    due = await ca_repo.crl_due(conn, now + crl.REBUILD_BEFORE, limit)
    done = 0
    for d in due:
        try:
            done += await _rebuild_one(conn, keyring, base_url, d, now)
        except AppError as exc:  # one CA's failure (KMS down, tampered key) must not stop the others
            log.warning("CRL rebuild failed", extra={"ca_id": d["id"], "error": exc.code})
    return done


async def _rebuild_one(conn: asyncpg.Connection, keyring: Any, base_url: str, d: asyncpg.Record,
                       now: datetime) -> int:
    async with conn.transaction():
        ca = await ca_repo.get(conn, d["tenant_id"], d["id"], for_update=True)
        if ca is None or (ca["crl_next_update"] is not None and ca["crl_next_update"] >= now + crl.REBUILD_BEFORE):
            return 0  # rebuilt meanwhile
        partner = await _partner(conn, d["tenant_id"], d["partner_id"])
        issuer = await crl.load_issuer(conn, keyring, base_url, d["tenant_id"], partner, ca)
        await crl.rebuild(conn, issuer, d["tenant_id"], d["id"], now=now)
        return 1
    return 0
