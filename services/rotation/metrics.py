"""``scaivault_secret_rotations_total{status}`` and ``scaivault_rotation_queue_depth``, read from PostgreSQL when
``/v1/metrics`` is scraped (rotations run in worker processes; the history table is the one count every
process agrees on). A slow or failing query leaves the previous values (metrics never fail a scrape)."""

from __future__ import annotations

import asyncio
import logging

from core import metrics
from db.engine import Database
from repositories import rotation as repo

log = logging.getLogger("scaivault.rotation")


async def refresh(db: Database, limit_seconds: float = 2.0) -> None:
    try:
        async with asyncio.timeout(limit_seconds), db.raw() as conn:
            counts = {r["status"]: r["n"] for r in await conn.fetch(
                "SELECT status, count(*)::bigint AS n FROM rotation_history WHERE status <> 'pending' GROUP BY status")}
            depth = await repo.queue_depth(conn)
    except Exception as exc:
        log.warning("rotation metrics unavailable", extra={"error": type(exc).__name__})
        return
    for status in ("success", "failed"):
        metrics.SECRET_ROTATIONS.labels(status=status).set(counts.get(status, 0))
    metrics.ROTATION_QUEUE_DEPTH.set(depth)
