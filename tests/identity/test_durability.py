"""A worker SIGKILLed in the middle of a slow sync: a new worker finishes the same sync."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import ADMIN, TENANT


@pytest.mark.slow
async def test_worker_killed_mid_sync_is_finished_by_a_new_worker(identity_stack, emu, worker_process):
    await emu.page_size(2)
    await emu.control("POST", "/faults", json={"path": "/api/v1/admin/groups/*/members", "latency": 0.6})
    async with identity_stack(worker=False, scaikey_sync_concurrency=1, identity_sync_retry_attempts=5,
                              identity_sync_heartbeat_seconds=3) as stack:
        first = worker_process(stack.settings)
        h = await stack.token(ADMIN)
        accepted = await stack.sync(h, tenant_id=TENANT)
        deadline = time.monotonic() + 30
        while len(await emu.requests("/api/v1/admin/groups/*/members")) < 2:
            assert time.monotonic() < deadline, "the sync never started reading group members"
            await asyncio.sleep(0.1)
        body = (await stack.api.get(f"/v1/identity/sync/{accepted['sync_id']}", headers=h)).json()
        assert body["status"] == "running"
        first.kill()
        assert not first.alive()
        await emu.control("DELETE", "/faults")
        worker_process(stack.settings)
        done = await stack.wait_sync(accepted["sync_id"], h, timeout=90)
        assert done["status"] == "succeeded", done
        assert done["stats"]["users_seen"] == 5
        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=h)
        assert r.json()["total"] == 5
    # the second worker re-read the directory from the start (the activity was retried, not lost)
    firsts = [e for e in await emu.requests("*/effective-users") if "page=1" in str(e.get("query"))]
    assert len(firsts) >= 2
