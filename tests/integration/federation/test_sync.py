"""Sync mode with the worker subprocess against a real OpenBao dev server and moto_server: the initial sync, a forced
sync picks up a remote change at once and the scheduled one within its interval; writes go through the secrets
path as system:federation-sync (audit federation_sync, secret.* events); conflicts are detected, listed and
resolved both ways; an outage shows in status while local copies stay readable and the next sync catches up;
remote deletions soft-delete the local copy."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import boto3
import pytest

from tests.integration.federation.conftest import poll

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def _value(stack: Any, path: str) -> dict[str, Any] | None:
    r = await stack.get(path)
    return r.json()["data"] if r.status_code == 200 else None


async def _has(stack: Any, path: str, data: dict[str, Any]) -> bool:
    return await _value(stack, path) == data


async def test_forced_and_scheduled_sync_write_through_the_secrets_path(stack_factory: Any, bao: Any,
                                                                       worker_process: Any) -> None:
    stack = await stack_factory()
    worker_process(stack.settings)
    local = f"ext/{uuid.uuid4().hex[:6]}"
    bao.put("app/db", {"password": "v1"})
    bao.put("app/api/key", {"key": "k1"})
    b = await stack.vault_backend(bao, mode="sync", local=f"{local}/**", sync_interval="4s")
    await poll(lambda: _has(stack, f"{local}/app/db", {"password": "v1"}), "the initial sync")
    await poll(lambda: _has(stack, f"{local}/app/api/key", {"key": "k1"}), "the initial sync (nested key)")
    # scheduled: within the interval, without asking
    bao.put("app/db", {"password": "v2"})
    await poll(lambda: _has(stack, f"{local}/app/db", {"password": "v2"}), "the scheduled sync", timeout=30)
    # forced: patch the interval to an hour, then a change is picked up only because we ask
    r = await stack.api.patch(f"/v1/federation/backends/{b['id']}", json={"sync_interval": "1h"}, headers=stack.admin)
    assert r.status_code == 200, r.text

    async def hour_interval_applied() -> bool:
        st = await stack.status(b["id"])
        return st["last_sync"] is not None and bool(
            await stack.sql("SELECT 1 FROM audit_log WHERE action = 'federation_sync' AND resource_id = $1"
                            " AND ts > (SELECT updated_at FROM federation_backends WHERE id = $1)"
                            " AND identity_id = 'system:federation-sync'", b["id"]))

    await poll(hour_interval_applied, "a run after the PATCH (it reports the new interval)")
    bao.put("app/db", {"password": "v3"})
    await stack.sync(b["id"])
    await poll(lambda: _has(stack, f"{local}/app/db", {"password": "v3"}), "the forced sync", timeout=30)
    assert await stack.versions(f"{local}/app/db") == [1, 2, 3]  # one version per remote change, no duplicates
    rows = await stack.sql("SELECT action, identity_id FROM audit_log WHERE secret_path = $1 AND permission = 'write'"
                           " ORDER BY ts", f"{local}/app/db")
    assert {(r["action"], r["identity_id"]) for r in rows} == {("federation_sync", "system:federation-sync")}
    ev = await stack.sql("SELECT event_type, identity_id FROM events WHERE path = $1 ORDER BY seq", f"{local}/app/db")
    assert [e["event_type"] for e in ev] == ["secret.created", "secret.updated", "secret.updated"]
    assert {e["identity_id"] for e in ev} == {"system:federation-sync"}
    st = await stack.status(b["id"])
    assert st["status"] == "healthy" and st["secrets_synced"] == 2 and st["last_sync_duration_ms"] is not None
    assert st["connection"]["status"] == "connected" and st["lag_seconds"] is not None and st["last_error"] is None
    # remote deletion: the local copy is soft-deleted (recoverable)
    bao.delete("app/api/key")
    await stack.sync(b["id"])
    await poll(lambda: _absent(stack, f"{local}/app/api/key"), "the local soft delete")
    r = await stack.api.get(f"/v1/secrets/{local}/app/api/key:metadata?include_deleted=true", headers=stack.admin)
    assert r.status_code == 200 and r.json()["deleted_at"] is not None, r.text


async def _absent(stack: Any, path: str) -> bool:
    return (await stack.get(path)).status_code == 404


async def test_conflicts_are_detected_listed_and_resolved_both_ways(stack_factory: Any, bao: Any,
                                                                   worker_process: Any) -> None:
    stack = await stack_factory()
    worker_process(stack.settings)
    local = f"ext/{uuid.uuid4().hex[:6]}"
    bao.put("a", {"v": "remote-1"})
    bao.put("b", {"v": "remote-1"})
    b = await stack.vault_backend(bao, mode="sync", local=f"{local}/**", sync_interval="1h")
    await poll(lambda: _has(stack, f"{local}/b", {"v": "remote-1"}), "the initial sync")
    # both sides change
    for key in ("a", "b"):
        assert (await stack.put(f"{local}/{key}", {"v": "local-2"})).status_code == 200
        bao.put(key, {"v": "remote-2"})
    await stack.sync(b["id"])

    async def listed() -> list[dict[str, Any]]:
        r = await stack.api.get(f"/v1/federation/backends/{b['id']}/conflicts", headers=stack.admin)
        assert r.status_code == 200, r.text
        return r.json()["conflicts"] if len(r.json()["conflicts"]) == 2 else []

    conflicts = {c["path"]: c for c in await poll(listed, "two conflicts")}
    assert conflicts[f"{local}/a"]["local_version"] == 2 and conflicts[f"{local}/a"]["remote_version_id"] == "2"
    assert await _value(stack, f"{local}/a") == {"v": "local-2"}  # never overwritten
    ev = await stack.sql("SELECT count(*) AS n FROM events WHERE event_type = 'federation.conflict.detected'"
                         " AND path = ANY($1)", [f"{local}/a", f"{local}/b"])
    assert ev[0]["n"] == 2
    # keep local
    r = await stack.api.post(f"/v1/federation/backends/{b['id']}/conflicts/{conflicts[f'{local}/a']['id']}/resolve",
                             json={"keep": "local"}, headers=stack.admin)
    assert r.status_code == 200 and r.json()["resolution"] == "local", r.text
    # keep remote
    r = await stack.api.post(f"/v1/federation/backends/{b['id']}/conflicts/{conflicts[f'{local}/b']['id']}/resolve",
                             json={"keep": "remote"}, headers=stack.admin)
    assert r.status_code == 200 and r.json()["resolution"] == "remote", r.text
    assert await _value(stack, f"{local}/b") == {"v": "remote-2"}
    # resolving twice is a conflict; a made-up id is conflict_not_found
    r = await stack.api.post(f"/v1/federation/backends/{b['id']}/conflicts/{conflicts[f'{local}/b']['id']}/resolve",
                             json={"keep": "remote"}, headers=stack.admin)
    assert r.status_code == 409
    r = await stack.api.post(f"/v1/federation/backends/{b['id']}/conflicts/fcf_nope/resolve", json={"keep": "local"},
                             headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "conflict_not_found"
    # the next sync: nothing to do for either path (a stays local, b is in step), no new conflict
    async def runs() -> int:
        return len(await stack.sql("SELECT 1 FROM audit_log WHERE action = 'federation_sync' AND resource_id = $1"
                                   " AND identity_id = 'system:federation-sync'", b["id"]))

    before = await runs()
    await stack.sync(b["id"])

    async def another_run() -> bool:
        return await runs() > before

    await poll(another_run, "the next sync")
    assert await _value(stack, f"{local}/a") == {"v": "local-2"}
    r = await stack.api.get(f"/v1/federation/backends/{b['id']}/conflicts", headers=stack.admin)
    assert r.json()["conflicts"] == []
    r = await stack.api.get(f"/v1/federation/backends/{b['id']}/conflicts?include_resolved=true", headers=stack.admin)
    assert sorted(c["resolution"] for c in r.json()["conflicts"]) == ["local", "remote"]


async def test_outage_shows_in_status_local_reads_work_and_the_next_sync_catches_up(
        stack_factory: Any, bao: Any, worker_process: Any) -> None:
    stack = await stack_factory()
    worker_process(stack.settings)
    local = f"ext/{uuid.uuid4().hex[:6]}"
    bao.put("svc/db", {"password": "before"})
    b = await stack.vault_backend(bao, mode="sync", local=f"{local}/**", sync_interval="1h")
    await poll(lambda: _has(stack, f"{local}/svc/db", {"password": "before"}), "the initial sync")
    os.kill(bao.handle.pid, signal.SIGSTOP)  # the remote stops answering (its data survives)
    try:
        await stack.sync(b["id"])

        async def outage() -> dict[str, Any] | None:
            st = await stack.status(b["id"])
            return st if st["last_error"] and st["status"] == "unreachable" else None

        st = await poll(outage, "the outage in status", timeout=60)
        assert st["connection"]["status"] == "unreachable"
        assert await _value(stack, f"{local}/svc/db") == {"password": "before"}  # the local copy stays readable
    finally:
        os.kill(bao.handle.pid, signal.SIGCONT)
    bao.put("svc/db", {"password": "after"})
    await stack.sync(b["id"])
    await poll(lambda: _has(stack, f"{local}/svc/db", {"password": "after"}), "the catch-up sync", timeout=60)

    async def healthy() -> bool:
        st = await stack.status(b["id"])
        return st["status"] == "healthy" and st["last_error"] is None

    await poll(healthy, "healthy again")


async def test_asm_sync_mode(stack_factory: Any, moto: str, worker_process: Any) -> None:
    stack = await stack_factory()
    worker_process(stack.settings)
    sm = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    pre = f"prod{uuid.uuid4().hex[:6]}/"
    sm.create_secret(Name=pre + "svc/one", SecretString='{"user": "u", "password": "p1"}')
    sm.create_secret(Name=pre + "svc/two", SecretString="plain")
    local = f"ext/aws{uuid.uuid4().hex[:6]}"
    b = await stack.asm_backend(moto, mode="sync", local=f"{local}/**", remote=f"{pre}**", sync_interval="1h")
    await poll(lambda: _has(stack, f"{local}/svc/one", {"user": "u", "password": "p1"}), "the initial ASM sync")
    assert await _value(stack, f"{local}/svc/two") == {"value": "plain"}
    sm.put_secret_value(SecretId=pre + "svc/one", SecretString='{"user": "u", "password": "p2"}')
    await stack.sync(b["id"])
    await poll(lambda: _has(stack, f"{local}/svc/one", {"user": "u", "password": "p2"}), "the forced ASM sync")
    assert await stack.versions(f"{local}/svc/one") == [1, 2]
    assert await stack.versions(f"{local}/svc/two") == [1]


async def test_forced_syncs_during_a_run_coalesce_into_one_next_run(stack_factory: Any, bao: Any,
                                                                   worker_process: Any) -> None:
    from services.federation.backends import workflow_id
    from tests.helpers import TENANT
    from worker.client import connect
    from workflows.types.federation import STATE_QUERY, SyncState

    stack = await stack_factory(federation_sync_page_size=5)
    worker_process(stack.settings.model_copy(update={"federation_crash_test_page_pause_seconds": 0.5}))
    local = f"ext/{uuid.uuid4().hex[:6]}"
    for i in range(40):
        bao.put(f"co/s{i:02d}", {"v": str(i)})
    b = await stack.vault_backend(bao, mode="sync", local=f"{local}/**", sync_interval="1h")

    async def started() -> bool:
        rows = await stack.sql("SELECT count(*) AS n FROM secrets WHERE path LIKE $1", f"{local}/%")
        return 0 < rows[0]["n"] < 40

    await poll(started, "the initial run in progress")
    for _ in range(5):
        await stack.sync(b["id"])
    client = await connect(stack.settings)
    handle = client.get_workflow_handle(workflow_id(stack.settings, TENANT, b["id"]))

    async def settled() -> SyncState | None:
        st: SyncState = await handle.query(STATE_QUERY, result_type=SyncState)
        return st if st.runs >= 2 and not st.running and st.pending == 0 else None

    st = await poll(settled, "the coalesced run", timeout=120)
    assert st.runs == 2, st  # the initial run + one run for the five signals
    assert await stack.versions(f"{local}/co/s00") == [1]
