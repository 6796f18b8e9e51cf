"""Durable revocation with a real worker subprocess and the session's Temporal dev server:

* leases with a short TTL are revoked at expiry (the role is gone, the login fails), audited as
  system:lease-revoker, lease.expired emitted;
* a worker SIGKILLed before the expiry: a new worker revokes on time after it starts;
* a target that is down: retries with backoff, revocation_failed with the error in the API and in the revoker's
  state query, and the lease is revoked once the target is back (never marked revoked before);
* pause protects live credentials; resume drains the backlog.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest

pytestmark = pytest.mark.asyncio

FAST = {"dynamic_revocation_backoff_seconds": 0.5, "dynamic_revocation_backoff_max_seconds": 1.0,
        "dynamic_revocation_max_attempts": 2, "dynamic_revoker_idle_seconds": 30,
        "dynamic_root_credentials_cache_seconds": 0.5}


async def poll(check: Any, *, deadline: float = 60.0, every: float = 0.75) -> Any:
    """Poll ``check`` until it returns something truthy. At most 80 checks a minute: the lease GET is in the
    list_operations rate category (100/min), which a faster poll exhausts while the revoker waits under load."""
    end = time.monotonic() + deadline
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < end, "condition not reached before the deadline"
        await asyncio.sleep(every)


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


async def _revoked(stack: Any, lease_id: str) -> dict[str, Any] | None:
    got = await stack.lease(lease_id)
    return got if got["status"] == "revoked" else None


async def test_expiry_revokes_at_the_target_on_time(stack_factory, worker_process) -> None:
    stack = await stack_factory(**FAST)
    worker_process(stack.settings)
    eng = await stack.engine()
    await stack.role(eng["name"])
    leases = [(await stack.creds(eng["name"], ttl="3s")).json() for _ in range(3)]
    for lease in leases:
        assert await stack.target.can_login(lease["data"]["username"], lease["data"]["password"])
    for lease in leases:
        done = await poll(lambda lease=lease: _revoked(stack, lease["lease_id"]))
        lag = (_ts(done["revoked_at"]) - _ts(lease["expires_at"])).total_seconds()
        assert 0 <= lag < 5, lag  # on time: within a few seconds of expiry, never before it
        assert not await stack.target.role_exists(lease["data"]["username"])
        assert not await stack.target.can_login(lease["data"]["username"], lease["data"]["password"])
    audits = await stack.audit("dynamic_revoke")
    assert sorted(a["resource_id"] for a in audits) == sorted(x["lease_id"] for x in leases)
    assert {a["identity_id"] for a in audits} == {"system:lease-revoker"}
    expired = await stack.events("lease.expired")
    assert len(expired) == 3 and {e["identity_id"] for e in expired} == {"system:lease-revoker"}


async def test_worker_killed_before_expiry_still_revokes_on_time(stack_factory, worker_process) -> None:
    stack = await stack_factory(**FAST)
    first = worker_process(stack.settings)
    eng = await stack.engine()
    await stack.role(eng["name"])
    lease = (await stack.creds(eng["name"], ttl="6s")).json()
    # the revoker is running and sleeping on its durable timer
    await poll(lambda: stack.sql("SELECT 1 FROM dynamic_engines WHERE revoker_wake_at IS NOT NULL"))
    first.kill()  # SIGKILL before the expiry
    worker_process(stack.settings)
    done = await poll(lambda: _revoked(stack, lease["lease_id"]))
    lag = (_ts(done["revoked_at"]) - _ts(lease["expires_at"])).total_seconds()
    assert 0 <= lag < 8, lag  # the new worker is up before the expiry; sticky timeout 3 s
    assert not await stack.target.role_exists(lease["data"]["username"])


async def test_down_target_retries_reports_and_recovers(stack_factory, worker_process) -> None:
    stack = await stack_factory(**FAST)
    worker_process(stack.settings)
    eng = await stack.engine()
    await stack.role(eng["name"])
    lease = (await stack.creds(eng["name"], ttl="2s")).json()
    user = lease["data"]["username"]
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" NOLOGIN')  # the target refuses the engine

    async def failed() -> dict[str, Any] | None:
        got = await stack.lease(lease["lease_id"])
        return got if got["status"] == "revocation_failed" else None

    got = await poll(failed)
    assert got["revocation_attempts"] >= 2 and "not permitted to log in" in got["last_error"]
    assert await stack.target.role_exists(user)  # never marked revoked while the target did not confirm
    r = await stack.api.get("/v1/dynamic/leases", params={"status": "revocation_failed"}, headers=stack.admin)
    assert [x["lease_id"] for x in r.json()["leases"]] == [lease["lease_id"]]
    # visible in Temporal: the revoker's state query lists the failing lease with its error
    from services.dynamic.revocation import workflow_id
    from worker.client import connect

    client = await connect(stack.settings)
    handle = client.get_workflow_handle(workflow_id(stack.settings, "tnt_acme_prod", eng["id"]))

    async def state_shows_failure() -> Any:
        st = await handle.query("state")
        return [f for f in st["failing"] if f["lease_id"] == lease["lease_id"] and "log in" in f["last_error"]]

    await poll(state_shows_failure)
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" LOGIN')  # the target is back
    await poll(lambda: _revoked(stack, lease["lease_id"]))
    assert not await stack.target.role_exists(user)


async def test_pause_protects_credentials_and_resume_drains(stack_factory, worker_process) -> None:
    stack = await stack_factory(**FAST)
    worker_process(stack.settings)
    eng = await stack.engine()
    await stack.role(eng["name"])
    r = await stack.api.post(f"/v1/dynamic/engines/{eng['name']}/revocation/pause", headers=stack.admin)
    assert r.status_code == 200 and r.json()["revocation_paused"] is True
    leases = [(await stack.creds(eng["name"], ttl="1s")).json() for _ in range(5)]
    r = await stack.api.post(f"/v1/dynamic/leases/{leases[0]['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 202 and r.json()["status"] == "revoking"
    # well past expiry the roles still exist: the revoker ran (it recorded its next wake) and left them alone
    await asyncio.sleep(3)
    await poll(lambda: stack.sql("SELECT 1 FROM dynamic_engines WHERE revoker_wake_at IS NOT NULL"))
    for lease in leases:
        assert await stack.target.role_exists(lease["data"]["username"])
    r = await stack.api.post(f"/v1/dynamic/engines/{eng['name']}/revocation/resume", headers=stack.admin)
    assert r.status_code == 200 and r.json()["revocation_paused"] is False
    for lease in leases:
        await poll(lambda lease=lease: _revoked(stack, lease["lease_id"]))
        assert not await stack.target.role_exists(lease["data"]["username"])


async def test_lease_issued_while_temporal_unreachable_is_revoked_by_the_reconcile(
        stack_factory, settings_factory, worker_process) -> None:
    """The API cannot signal the revoker (Temporal unreachable from the API): the lease row alone is enough, the
    worker's lease-reconcile Schedule starts the engine's revoker and the lease is revoked."""
    stack = await stack_factory(**FAST, temporal_address="127.0.0.1:1", temporal_rpc_timeout_seconds=0.5)
    eng = await stack.engine()
    await stack.role(eng["name"])
    lease = (await stack.creds(eng["name"], ttl="1s")).json()
    assert lease["status"] == "active"
    worker_process(settings_factory(**FAST, dynamic_reconcile_seconds=2))
    await poll(lambda: _revoked(stack, lease["lease_id"]), deadline=90)
    assert not await stack.target.role_exists(lease["data"]["username"])
