"""Secret expiry notices (lifecycle.md §2): ``secret.expiring`` at each ``notify_before`` threshold (default
``EXPIRY_NOTIFY_BEFORE`` = ``30d,7d,1d``) and ``secret.expired`` once ``expires_at`` has passed.

A housekeeping sweeper (run by the ``housekeeping`` Schedule every ``HOUSEKEEPING_INTERVAL_SECONDS``) rather than
a timer per secret: one indexed query finds the secrets owing a notice, and each notice is written with its
mark (unique per secret, expiry and threshold) in one transaction, so each fires exactly once however often a
sweep is retried. A new ``expires_at`` (a later write) starts a fresh set of notices. When several thresholds
passed unseen (the platform was down, or the expiry was set inside a threshold), only the latest one is sent
and the earlier ones are recorded as skipped; once the secret has expired only ``secret.expired`` is sent.
Tenant secrets only (partner-wide secrets have no tenant to address events to).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from core.settings import Settings
from repositories import rotation as repo
from repositories.events import outbox
from services.housekeeping import sweeper
from services.rotation.policies import iso, parse_thresholds

IDENTITY = "system:expiry-notifier"


@sweeper("secret_expiry_notifications")
async def notify_expiring(conn: asyncpg.Connection, settings: Settings, limit: int) -> int:
    rows = await repo.expiring(conn, settings.expiry_notify_before, limit)
    for row in rows:
        async with conn.transaction():
            await _notify(conn, settings, row)
    return len(rows)


async def _notify(conn: asyncpg.Connection, settings: Settings, row: Any) -> None:
    now = datetime.now(UTC)
    exp = row["expires_at"]
    marks = await repo.expiry_marks(conn, row["id"], exp)
    thresholds = parse_thresholds(row["notify_before"] or settings.expiry_notify_before, field="notify_before")
    passed = [label for label, s in thresholds if exp - timedelta(seconds=s) <= now and label not in marks]
    base = {"tenant_id": row["tenant_id"], "partner_id": row["partner_id"], "identity_id": IDENTITY,
            "path": row["path"]}
    if exp <= now:
        for label in passed:
            await repo.add_expiry_mark(conn, row["id"], exp, label)
        if await repo.add_expiry_mark(conn, row["id"], exp, "expired"):
            await outbox.emit(conn, event_type="secret.expired", **base, data={
                "expires_at": iso(exp), "expired_at": iso(exp), "version": row["current_version"]})
        return
    if not passed:
        return
    *skipped, label = passed  # thresholds are longest first: the last passed one is the nearest
    for s in skipped:
        await repo.add_expiry_mark(conn, row["id"], exp, s)
    if await repo.add_expiry_mark(conn, row["id"], exp, label):
        await outbox.emit(conn, event_type="secret.expiring", **base, data={
            "expires_at": iso(exp), "days_remaining": max(0, (exp - now).days), "threshold": label})
