"""A throttling backend: a proxied read answers 429 backend_rate_limited (retryable) naming the backend, and a sync
run ends as failed with a back-off, status degraded with the reason in last_error, while the local copy stays."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.federation.remote import RemoteError
from services.federation.vault import VaultRemote

pytestmark = [pytest.mark.asyncio]


async def _throttled(*args: Any, **kwargs: Any) -> Any:
    raise RemoteError("rate_limited", "the backend is throttling (429)")


async def test_throttled_backend(stack: Any, bao: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis.asyncio as aioredis

    from activities.federation import worker_state
    from db.engine import Database
    from services.federation.sync import run_sync
    from tests.helpers import TENANT

    local = f"ext/{uuid.uuid4().hex[:6]}"
    proxy = await stack.vault_backend(bao, mode="proxy", local=f"{local}p/**")
    bao.put("t", {"v": "1"})
    sync = await stack.vault_backend(bao, mode="sync", local=f"{local}s/**", sync_interval="1h")
    db = Database(stack.settings, pool_size=2, application_name="fed-throttle-test")
    redis = aioredis.Redis.from_url(stack.settings.redis_url)
    state = worker_state(stack.settings, db, redis)
    try:
        out = await run_sync(state, TENANT, sync["id"], resume_after=None, heartbeat=lambda _: None)
        assert out["status"] == "succeeded" and out["counts"]["created"] == 1, out
        monkeypatch.setattr(VaultRemote, "read", _throttled)
        monkeypatch.setattr(VaultRemote, "list_keys", _throttled)
        r = await stack.get(f"{local}p/t")
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["code"] == "backend_rate_limited" and err["details"]["backend"] == proxy["name"]
        out = await run_sync(state, TENANT, sync["id"], resume_after=None, heartbeat=lambda _: None)
        assert out["status"] == "failed" and out["retry_after_seconds"] > 0 and "rate_limited" in out["error"]
        st = await stack.status(sync["id"])
        assert st["status"] == "degraded" and "throttling" in st["last_error"], st
        assert (await stack.get(f"{local}s/t")).json()["data"] == {"v": "1"}  # the local copy stays readable
    finally:
        await redis.aclose()
        await db.dispose()
