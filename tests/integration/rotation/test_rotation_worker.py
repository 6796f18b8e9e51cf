"""Rotation on the real Temporal dev server with worker subprocesses: exactly one new version when the worker is
SIGKILLed between writing the version and recording the result; manual rotation through the API (policy and
``:rotate``); grace end; ``reschedule`` moves timers without a restart; ``make dev``-style visibility."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.rotation.schedule import workflow_id
from tests.helpers import TENANT, poll
from worker.client import connect
from workflows.types.rotation import STATE_QUERY, RotationState

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def _attached(stack, **policy: Any) -> tuple[dict[str, Any], str, int]:
    pol = await stack.policy(**{"interval": "90d", **policy})
    path = f"rot/wk/{uuid.uuid4().hex[:10]}"
    r = await stack.put(path, {"password": "v1-value"}, rotation_policy_id=pol["id"])
    assert r.status_code == 201, r.text
    [row] = await stack.sql("SELECT id FROM secrets WHERE path = $1", path)
    return pol, path, int(row["id"])


async def _state(stack, sid: int) -> RotationState:
    client = await connect(stack.settings)
    handle = client.get_workflow_handle(workflow_id(stack.settings, TENANT, sid))
    return await handle.query(STATE_QUERY, result_type=RotationState)  # type: ignore[no-any-return]


async def test_worker_killed_after_the_write_yields_exactly_one_new_version(stack, worker_process) -> None:
    pausing = stack.settings.model_copy(update={"rotation_crash_test_pause_seconds": 600.0})
    first = worker_process(pausing)
    pol, path, sid = await _attached(stack, auto_generate=True)
    r = await stack.api.post(f"/v1/secrets/{path}:rotate", headers=stack.admin)
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["status"] == "pending" and item["trigger"] == "manual" and item["old_version"] == 1

    async def written() -> bool:
        return await stack.versions(path) == [1, 2]

    await poll(written, "the rotation's version write")
    # the version is committed and the activity is paused before reporting: kill the worker right there
    [h] = await stack.sql("SELECT status FROM rotation_history WHERE id = $1", item["id"])
    assert h["status"] == "success"  # recorded with the version, in its transaction
    first.kill()
    assert not first.alive()
    worker_process(stack.settings)  # the retried activity finds the cycle's version and writes nothing

    async def replayed() -> RotationState | None:
        st = await _state(stack, sid)
        return st if st.last_result is not None else None

    st = await poll(replayed, "the retried rotation to report", timeout=150)
    assert st.last_result == "replayed" and st.cycle == 2
    assert await stack.versions(path) == [1, 2]
    assert len(await stack.events("secret.rotated", path=path)) == 1
    assert len(await stack.events("rotation.completed", path=path)) == 1
    audit = await stack.sql("SELECT version FROM audit_log WHERE secret_path = $1 AND action = 'rotate'"
                            " AND identity_id = 'system:rotation-scheduler'", path)
    assert [a["version"] for a in audit] == [2]
    [key] = await stack.sql("SELECT v.rotation_key FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
                            " WHERE s.path = $1 AND v.version = 2", path)
    assert key["rotation_key"] == "1"  # the (secret, cycle) idempotency key, stored with the version
    hist = (await stack.api.get(f"/v1/rotation/policies/{pol['id']}/history", headers=stack.admin)).json()["data"]
    assert [(x["id"], x["status"], x["new_version"]) for x in hist] == [(item["id"], "success", 2)]


async def test_manual_rotation_grace_end_and_reschedule(stack, worker_process) -> None:
    worker_process(stack.settings)
    pol, path, sid = await _attached(stack, auto_generate=True, grace_period="3s")
    other_pol, other, other_sid = await _attached(stack, auto_generate=True)
    # the workflow runs as soon as the secret is attached (PUT with options.rotation_policy_id)
    await poll(lambda: _state(stack, sid), "the workflow's first plan")
    [a] = await stack.sql("SELECT anchor_at FROM rotation_assignments WHERE secret_id = $1", sid)
    due = a["anchor_at"] + timedelta(days=90)

    async def planned(expect: datetime) -> bool:
        s = await _state(stack, sid)
        return s.next_due_at is not None and datetime.fromisoformat(s.next_due_at.replace("Z", "+00:00")) == expect

    await poll(lambda: planned(due), "next due = anchor + 90d")
    client = await connect(stack.settings)

    async def listed() -> bool:  # what the Temporal UI shows: the visibility list of running workflows
        wanted = workflow_id(stack.settings, TENANT, sid)
        async for wf in client.list_workflows("WorkflowType = 'SecretRotation' AND ExecutionStatus = 'Running'"):
            if wf.id == wanted:
                return True
        return False

    await poll(listed, "rotation/<tenant>/<secret> in the workflow list")
    run_id = (await client.get_workflow_handle(workflow_id(stack.settings, TENANT, sid)).describe()).run_id
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", json={"interval": "30d"}, headers=stack.admin)
    assert r.status_code == 200
    await poll(lambda: planned(a["anchor_at"] + timedelta(days=30)), "timers moved by reschedule")
    assert (await client.get_workflow_handle(workflow_id(stack.settings, TENANT, sid)).describe()).run_id == run_id

    # rotate now, limited to one attached path
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/rotate", json={"secret_paths": [path]},
                             headers=stack.admin)
    assert r.status_code == 200, r.text
    assert [x["secret_path"] for x in r.json()] == [path]
    await poll(lambda: stack.events("rotation.completed", path=path), "the manual rotation")
    assert await stack.versions(path) == [1, 2] and await stack.versions(other) == [1]
    v1 = await stack.api.get(f"/v1/secrets/{path}?version=1", headers=stack.admin)
    assert v1.status_code == 200  # within the grace period

    async def gone() -> bool:
        r = await stack.api.get(f"/v1/secrets/{path}?version=1", headers=stack.admin)
        return r.status_code == 404 and r.json()["error"]["code"] == "version_not_found"

    await poll(gone, "the superseded version to become unreadable after grace")
    assert (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).json()["version"] == 2
    # an unknown path in secret_paths changes nothing
    r = await stack.api.post(f"/v1/rotation/policies/{other_pol['id']}/rotate", json={"secret_paths": [path]},
                             headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    assert await stack.sql("SELECT 1 FROM rotation_history WHERE secret_id = $1", other_sid) == []
    # detaching ends the workflow
    r = await stack.api.delete(f"/v1/rotation/policies/{pol['id']}/secrets/{path.replace('/', '%2F')}",
                               headers=stack.admin)
    assert r.status_code == 204

    async def ended() -> bool:
        d = await client.get_workflow_handle(workflow_id(stack.settings, TENANT, sid)).describe()
        return d.status is not None and d.status.name == "COMPLETED"

    await poll(ended, "the detached secret's workflow to complete")


async def test_reconcile_schedule_starts_workflows_the_api_could_not_start(stack, worker_process) -> None:
    from worker.schedules import rotation_reconcile_schedule_id

    worker_process(stack.settings)
    pol = await stack.policy()
    path = f"rot/wk/{uuid.uuid4().hex[:10]}"
    assert (await stack.put(path, {"password": "v1"})).status_code == 201
    # what the API leaves behind when Temporal refused the signal-with-start: the committed attachment, unstarted
    [row] = await stack.sql("UPDATE secrets SET rotation_policy_id = $2 WHERE path = $1 RETURNING id", path, pol["id"])
    sid = int(row["id"])
    await stack.sql("INSERT INTO rotation_assignments (secret_id, tenant_id, policy_id, anchor_at) VALUES"
                    " ($1, $2, $3, now()) RETURNING secret_id", sid, TENANT, pol["id"])
    client = await connect(stack.settings)
    schedule = client.get_schedule_handle(rotation_reconcile_schedule_id(stack.settings))
    await schedule.trigger()  # the worker created it; it also runs every minute on its own

    async def started() -> bool:
        rows = await stack.sql("SELECT workflow_started FROM rotation_assignments WHERE secret_id = $1", sid)
        return bool(rows and rows[0]["workflow_started"])

    await poll(started, "the reconcile to start the workflow")
    async def planned() -> RotationState | None:
        st = await _state(stack, sid)
        return st if st.policy_id == pol["id"] else None

    st = await poll(planned, "the started workflow to load its plan")
    assert st.status == "scheduled" and st.next_action == "due" and st.cycle == 1


async def test_policy_change_fans_out_beyond_the_inline_limit_through_the_reconcile(stack, worker_process,
                                                                                   monkeypatch) -> None:
    from services.rotation import schedule

    monkeypatch.setattr(schedule, "INLINE_SIGNALS", 2)  # the API runs in this process
    worker_process(stack.settings)
    pol = await stack.policy(interval="90d")
    sids = []
    for _ in range(5):
        path = f"rot/fan/{uuid.uuid4().hex[:10]}"
        assert (await stack.put(path, {"password": "v1"}, rotation_policy_id=pol["id"])).status_code == 201
        [row] = await stack.sql("SELECT id FROM secrets WHERE path = $1", path)
        sids.append(int(row["id"]))
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", json={"interval": "30d"}, headers=stack.admin)
    assert r.status_code == 200
    anchors = {r["secret_id"]: r["anchor_at"] for r in await stack.sql(
        "SELECT secret_id, anchor_at FROM rotation_assignments WHERE secret_id = ANY($1)", sids)}

    async def all_moved() -> bool:
        for sid in sids:
            st = await _state(stack, sid)
            want = anchors[sid] + timedelta(days=30)
            if st.next_due_at is None or datetime.fromisoformat(st.next_due_at.replace("Z", "+00:00")) != want:
                return False
        return True

    await poll(all_moved, "every attached secret's timers to move (2 inline, 3 through the reconcile)")
    assert await stack.sql("SELECT 1 FROM rotation_assignments WHERE secret_id = ANY($1) AND NOT workflow_started",
                           sids) == []
