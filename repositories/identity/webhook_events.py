"""SQL for ScaiKey webhook idempotency (``scaikey_webhook_events``): one row per delivered ``event_id``, so a
redelivery is recognised and not applied twice; old rows are pruned by a housekeeping sweeper."""

from __future__ import annotations

import asyncpg


def _count(status: str) -> int:
    return int(status.split()[-1])


async def record_webhook_event(conn: asyncpg.Connection, *, event_id: str, event_type: str,
                               tenant_id: str | None, handled: bool) -> bool:
    """True when this ``event_id`` is new (False: a redelivery, already applied)."""
    status = await conn.execute(
        "INSERT INTO scaikey_webhook_events (event_id, event_type, tenant_id, handled) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (event_id) DO NOTHING", event_id, event_type, tenant_id, handled)
    return _count(status) == 1


async def prune_webhook_events(conn: asyncpg.Connection, *, older_than_days: int, limit: int) -> int:
    return _count(await conn.execute(
        "DELETE FROM scaikey_webhook_events WHERE event_id IN (SELECT event_id FROM scaikey_webhook_events"
        " WHERE received_at < now() - make_interval(days => $1) LIMIT $2)", older_than_days, limit))
