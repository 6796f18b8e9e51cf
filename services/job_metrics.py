"""Queue-depth gauges read from PostgreSQL when ``/metrics`` is scraped (API and worker), plus DB and Redis
round-trip probes (docs/operations.md "Metrics").

The work waits in PostgreSQL rows that every process agrees on, so each depth is one cheap query at scrape time
(partial or bounded), not a counter kept in some process. An area adds its queue with :func:`register_depth`
(``scaivault_queue_depth{queue}``); built in here: ``outbox_backlog`` (undispatched events; also
``scaivault_outbox_oldest_age_seconds``), ``webhook_deliveries_pending`` (also the spec's
``scaivault_webhook_queue_depth``), ``leases_pending_revocation``, ``leases_revocation_failed`` and
``acme_orders_pending``; probes (:func:`register_probe`) set other gauges, such as
``scaivault_identity_sync_age_seconds``. A failing or slow query leaves the previous value: metrics never fail a
scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core import metrics

log = logging.getLogger("scaivault.metrics")

DepthQuery = Callable[[Any], Awaitable[float]]
_DEPTHS: dict[str, DepthQuery] = {}
_QUERY_TIMEOUT = 2.0
_CAP = 1_000_000  # a count past this is reported as the cap (bounded scan)


def register_depth(queue: str, query: DepthQuery) -> None:
    """``query(conn) -> number`` becomes ``scaivault_queue_depth{queue=...}`` at every scrape (idempotent)."""
    _DEPTHS[queue] = query


async def _outbox_backlog(conn: Any) -> float:
    row = await conn.fetchrow(
        "SELECT count(*) AS n, EXTRACT(EPOCH FROM (now() - min(created_at))) AS age "
        f"FROM (SELECT created_at FROM events WHERE dispatched_at IS NULL LIMIT {_CAP}) s")
    metrics.OUTBOX_OLDEST_AGE.set(float(row["age"] or 0.0))
    return float(row["n"])


async def _webhook_pending(conn: Any) -> float:
    n = float(await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' LIMIT {_CAP}) s"))
    metrics.WEBHOOK_QUEUE_DEPTH.set(n)
    return n


async def _leases_pending_revocation(conn: Any) -> float:
    """Leases past their expiry (or retry time) and not yet revoked: the revoker's backlog."""
    return float(await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM dynamic_leases WHERE status <> 'revoked' "
        f"AND COALESCE(next_attempt_at, expires_at) <= now() LIMIT {_CAP}) s"))


async def _leases_revocation_failed(conn: Any) -> float:
    return float(await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM dynamic_leases WHERE status = 'revocation_failed' LIMIT {_CAP}) s"))


async def _acme_orders_pending(conn: Any) -> float:
    """ACME orders (issuance and renewal) not yet valid or invalid."""
    return float(await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM acme_orders WHERE status IN ('pending', 'processing') "
        f"LIMIT {_CAP}) s"))


register_depth("outbox_backlog", _outbox_backlog)
register_depth("webhook_deliveries_pending", _webhook_pending)
register_depth("leases_pending_revocation", _leases_pending_revocation)
register_depth("leases_revocation_failed", _leases_revocation_failed)
register_depth("acme_orders_pending", _acme_orders_pending)

Probe = Callable[[Any], Awaitable[None]]
_PROBES: list[Probe] = []


def register_probe(probe: Probe) -> None:
    """``probe(conn)`` sets gauges of its own at every scrape (errors are logged, never raised)."""
    if probe not in _PROBES:
        _PROBES.append(probe)


async def _identity_sync_age(conn: Any) -> None:
    age = await conn.fetchval(
        "SELECT EXTRACT(EPOCH FROM max(now() - last)) FROM (SELECT max(finished_at) AS last "
        "FROM identity_sync_runs WHERE status = 'succeeded' AND tenant_id <> '*' GROUP BY tenant_id) s")
    metrics.IDENTITY_SYNC_AGE.set(float(age or 0.0))


register_probe(_identity_sync_age)


async def refresh(db: Any, redis: Any = None) -> None:
    """Probe PostgreSQL (and Redis), then set every registered depth."""
    try:
        async with db.raw() as conn:
            t0 = time.perf_counter()
            await asyncio.wait_for(conn.fetchval("SELECT 1"), _QUERY_TIMEOUT)
            metrics.DB_LATENCY.observe(time.perf_counter() - t0)
            for queue, query in list(_DEPTHS.items()):
                try:
                    value = await asyncio.wait_for(query(conn), _QUERY_TIMEOUT)
                except Exception as exc:
                    log.warning("queue depth query failed", extra={"queue": queue, "error": type(exc).__name__})
                    continue
                metrics.QUEUE_DEPTH.labels(queue).set(value)
            for probe in list(_PROBES):
                try:
                    await asyncio.wait_for(probe(conn), _QUERY_TIMEOUT)
                except Exception as exc:
                    log.warning("metrics probe failed", extra={"probe": getattr(probe, "__name__", "?"),
                                                               "error": type(exc).__name__})
    except Exception as exc:
        log.warning("metrics refresh could not reach PostgreSQL", extra={"error": type(exc).__name__})
    if redis is not None:
        try:
            t0 = time.perf_counter()
            await asyncio.wait_for(redis.ping(), _QUERY_TIMEOUT)
            metrics.REDIS_LATENCY.observe(time.perf_counter() - t0)
        except Exception as exc:
            log.warning("metrics refresh could not reach Redis", extra={"error": type(exc).__name__})
