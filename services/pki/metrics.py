"""``scaivault_certificates_active{ca_id}`` and ``scaivault_certificates_expiring_soon{within_days}`` (spec
lifecycle.md §3.8), set from PostgreSQL at scrape time, since certificates are issued by every API process."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Gauge

from repositories.pki import certificates as repo

log = logging.getLogger("scaivault.pki")

CERTIFICATES_ACTIVE = Gauge("scaivault_certificates_active", "Unrevoked, unexpired issued certificates per CA",
                            ["ca_id"], multiprocess_mode="max")
CERTIFICATES_EXPIRING_SOON = Gauge("scaivault_certificates_expiring_soon",
                                   "Unrevoked certificates expiring within the window", ["within_days"],
                                   multiprocess_mode="max")
WINDOWS_DAYS = (1, 7, 30)


async def refresh(db: Any) -> None:
    """Best effort: a database error leaves the previous values (and is logged), never fails the scrape."""
    try:
        async with db.raw() as conn:
            rows = await repo.active_counts(conn)
            CERTIFICATES_ACTIVE.clear()
            for r in rows:
                CERTIFICATES_ACTIVE.labels(ca_id=r["ca_id"]).set(r["n"])
            for days in WINDOWS_DAYS:
                CERTIFICATES_EXPIRING_SOON.labels(within_days=str(days)).set(await repo.expiring_count(conn, days))
    except Exception as exc:
        log.warning("pki metrics unavailable", extra={"error": type(exc).__name__})
