"""``scaivault_leases_active{engine}`` and ``scaivault_engine_health{engine}``, read from PostgreSQL when
``/v1/metrics`` is scraped (revocations happen in worker processes; the lease rows are the one count every process
agrees on). A slow or failing query leaves the previous values (metrics never fail a scrape)."""

from __future__ import annotations

import asyncio
import logging

from core import metrics
from db.engine import Database

log = logging.getLogger("scaivault.dynamic")


async def refresh(db: Database, limit_seconds: float = 2.0) -> None:
    try:
        async with asyncio.timeout(limit_seconds), db.raw() as conn:
            engines = await conn.fetch(
                "SELECT e.name, e.connection_status, (SELECT count(*) FROM dynamic_leases l WHERE l.engine_id = e.id"
                " AND l.status <> 'revoked') AS live FROM dynamic_engines e")
    except Exception as exc:
        log.warning("dynamic metrics unavailable", extra={"error": type(exc).__name__})
        return
    live: dict[str, int] = {}
    for e in engines:  # engine names are per tenant: the label sums same-named engines
        live[e["name"]] = live.get(e["name"], 0) + int(e["live"])
        metrics.ENGINE_HEALTH.labels(engine=e["name"]).set(1 if e["connection_status"] == "connected" else 0)
    for name, n in live.items():
        metrics.LEASES_ACTIVE.labels(engine=name).set(n)
