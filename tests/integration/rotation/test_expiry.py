"""Expiry notices (lifecycle.md §2): secret.expiring once per notify_before threshold, secret.expired once, from
the housekeeping sweeper; a read of an expired secret is 404 secret_not_found with details.expired."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from services import housekeeping
from services.rotation.expiry import notify_expiring

pytestmark = pytest.mark.asyncio


async def _sweep(stack) -> int:
    conn = await asyncpg.connect(stack.settings.asyncpg_dsn)
    try:
        return await notify_expiring(conn, stack.settings, 1000)
    finally:
        await conn.close()


async def test_the_sweeper_is_registered_with_housekeeping() -> None:
    assert housekeeping.load_all()["secret_expiry_notifications"] is notify_expiring


async def test_expiring_fires_once_per_threshold_and_only_the_latest_passed_one(stack) -> None:
    path = f"exp/{uuid.uuid4().hex[:10]}/key"
    r = await stack.put(path, {"k": "v"}, expires_in="30d", notify_before="10d,3d,1h")
    assert r.status_code == 201, r.text
    await _sweep(stack)
    assert await stack.events("secret.expiring", "secret.expired", path=path) == []  # 30 days out: nothing yet
    # five days before expiry: the 10d threshold has passed (3d and 1h have not)
    await stack.sql("UPDATE secrets SET expires_at = now() + interval '5 days' WHERE path = $1", path)
    await _sweep(stack)
    await _sweep(stack)
    evs = await stack.events("secret.expiring", path=path)
    assert [(e["data"]["threshold"], e["data"]["days_remaining"]) for e in evs] == [("10d", 4)]
    assert evs[0]["identity_id"] == "system:expiry-notifier"
    # thirty minutes before (as seen by a sweep that ran late): 3d and 1h both passed unseen -> only 1h is sent,
    # 3d is recorded as skipped
    await stack.sql("UPDATE secret_expiry_marks m SET expires_at = now() + interval '30 minutes' FROM secrets s"
                    " WHERE s.path = $1 AND m.secret_id = s.id", path)
    await stack.sql("UPDATE secrets SET expires_at = (SELECT m.expires_at FROM secret_expiry_marks m"
                    " WHERE m.secret_id = secrets.id LIMIT 1) WHERE path = $1", path)
    await _sweep(stack)
    await _sweep(stack)
    evs = await stack.events("secret.expiring", path=path)
    assert [e["data"]["threshold"] for e in evs] == ["10d", "1h"]
    marks = await stack.sql("SELECT m.mark FROM secret_expiry_marks m JOIN secrets s ON s.id = m.secret_id"
                            " WHERE s.path = $1 ORDER BY m.mark", path)
    assert [m["mark"] for m in marks] == ["10d", "1h", "3d"]


async def test_expired_fires_once_and_reads_are_404(stack) -> None:
    path = f"exp/{uuid.uuid4().hex[:10]}/token"
    r = await stack.put(path, {"k": "v"}, expires_in="1s")
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 30
    while (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).status_code != 404:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    r = await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)
    assert r.json()["error"]["code"] == "secret_not_found" and r.json()["error"]["details"]["expired"] is True
    await _sweep(stack)
    await _sweep(stack)
    evs = await stack.events("secret.expiring", "secret.expired", path=path)
    assert [e["event_type"] for e in evs] == ["secret.expired"]  # default thresholds skipped, expired once
    assert evs[0]["data"]["version"] == 1 and evs[0]["data"]["expires_at"].endswith("Z")
    # the metadata stays readable (for renewal), and a new write clears the expiry
    assert (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).status_code == 200
    assert (await stack.put(path, {"k": "v2"})).status_code == 200
    assert (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).json()["data"] == {"k": "v2"}
