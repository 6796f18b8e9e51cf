"""The audit log through the HTTP API: every authenticated request audited (allowed, denied, failed), committed
before the response, fail-closed 503, the hash chain and its verification, queries, export and trails."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import asyncpg
import orjson
import pytest
from fastapi import APIRouter, Depends

from api.context import RequestContext
from api.deps import authorized
from audit.sealer import prune_once, seal_all, verify_tenant
from cli.main import main as cli_main
from core.errors import AppError
from repositories import audit as audit_repo
from tests.helpers import ADMIN, CI, TENANT, bearer, client_token, reset_emulator, user_token

# A tiny test-only router with a describe()'d path action (secrets are built elsewhere).
_router = APIRouter(prefix="/v1/_test")


@_router.get("/secret/{path:path}")
async def _read(path: str,
                ctx: Annotated[RequestContext, Depends(authorized("secrets:read", "read_secrets"))]) -> dict[str, Any]:
    ctx.describe("read", path=path, permission="read", resource_type="secret")
    if path.startswith("forbidden/"):
        raise AppError("access_denied", f"no policy grants read on '{path}'", {"path": path})
    if path.startswith("boom/"):
        raise RuntimeError("unexpected")
    return {"path": path}


@pytest.fixture
async def env(scaikey, settings_factory, make_app_client, redis_clean, db_url, monkeypatch):
    import api.app as app_module

    monkeypatch.setattr(app_module, "ROUTERS", [*app_module.ROUTERS, "tests.integration.test_audit"])
    await reset_emulator(scaikey)
    settings = settings_factory(audit_seal_interval_seconds=0, audit_write_timeout_seconds=2)
    async with make_app_client(settings) as client:
        conn = await asyncpg.connect(db_url)
        try:
            yield client, conn, settings
        finally:
            await conn.close()


router = _router  # picked up through api.app.ROUTERS in the fixture above


async def rows_for(conn: asyncpg.Connection, request_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM audit_log WHERE request_id = $1 ORDER BY seq", request_id)


async def test_whoami_is_audited_before_the_response(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    r = await client.get("/v1/auth/whoami", headers=bearer(token, **{"User-Agent": "ua-test/1",
                                                                     "X-Correlation-ID": "corr-42"}))
    assert r.status_code == 200
    rows = await rows_for(conn, r.headers["x-request-id"])  # committed by the time we got the response
    assert len(rows) == 1
    row = rows[0]
    assert row["action"] == "whoami" and row["success"] is True
    assert row["identity_id"] == "sa:ci-deployer" and row["identity_type"] == "service_account"
    assert row["tenant_id"] == TENANT and row["partner_id"] == "prt_acme"
    assert row["correlation_id"] == "corr-42" and row["user_agent"] == "ua-test/1"
    assert row["id"].startswith("log_") and row["duration_ms"] >= 0


async def test_insufficient_scope_is_audited_as_failure(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)  # no admin scope
    r = await client.post("/v1/auth/introspect", json={"token": "x"}, headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    [row] = await rows_for(conn, r.headers["x-request-id"])
    assert row["success"] is False and row["error_code"] == "insufficient_scope"
    assert orjson.loads(row["extra_data"])["route"] == "/v1/auth/introspect"


async def test_denied_read_is_audited_with_path_and_permission(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    r = await client.get("/v1/_test/secret/forbidden/db/password", headers=bearer(token))
    assert r.status_code == 403
    [row] = await rows_for(conn, r.headers["x-request-id"])
    assert (row["action"], row["secret_path"], row["permission"]) == ("read", "forbidden/db/password", "read")
    assert row["success"] is False and row["error_code"] == "access_denied"
    ok = await client.get("/v1/_test/secret/app/config", headers=bearer(token))
    [row] = await rows_for(conn, ok.headers["x-request-id"])
    assert (row["action"], row["secret_path"], row["success"]) == ("read", "app/config", True)


async def test_unhandled_error_is_audited_as_internal_error(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    r = await client.get("/v1/_test/secret/boom/x", headers=bearer(token))
    assert r.status_code == 500
    [row] = await rows_for(conn, r.headers["x-request-id"])
    assert row["success"] is False and row["error_code"] == "internal_error" and row["secret_path"] == "boom/x"


async def test_cross_tenant_denial_is_audited_in_home_tenant(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    r = await client.get("/v1/auth/whoami", headers=bearer(token, **{"X-Tenant-ID": "tnt_acme_dev"}))
    assert r.status_code in (403, 404)
    [row] = await rows_for(conn, r.headers["x-request-id"])
    assert row["action"] == "tenant_access" and row["tenant_id"] == TENANT and row["success"] is False
    assert orjson.loads(row["extra_data"])["requested_tenant"] == "tnt_acme_dev"


async def test_unauthenticated_requests_are_not_audited(env):
    client, conn, _ = env
    r = await client.get("/v1/auth/whoami")
    assert r.status_code == 401
    assert await rows_for(conn, r.headers["x-request-id"]) == []


async def test_pat_creation_and_revocation_audited_in_the_same_transaction(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    r = await client.post("/v1/auth/tokens", json={"name": "ci", "scopes": ["secrets:read"]}, headers=bearer(token))
    assert r.status_code == 201, r.text
    pat = r.json()
    [row] = await rows_for(conn, r.headers["x-request-id"])
    assert (row["action"], row["resource_type"], row["resource_id"]) == ("token_create", "token", pat["id"])
    assert pat["token"] not in row["extra_data"]  # the token value never goes into the audit log
    d = await client.delete(f"/v1/auth/tokens/{pat['id']}", headers=bearer(token))
    assert d.status_code == 204
    [row] = await rows_for(conn, d.headers["x-request-id"])
    assert (row["action"], row["resource_id"], row["success"]) == ("token_revoke", pat["id"], True)


async def test_audit_store_unavailable_fails_closed(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    assert (await client.get("/v1/auth/whoami", headers=bearer(token))).status_code == 200
    await conn.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        r = await client.get("/v1/auth/whoami", headers=bearer(token))
        assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable"
        assert "identity_id" not in r.text  # the original body is not sent
        c = await client.post("/v1/auth/tokens", json={"name": "x", "scopes": ["secrets:read"]},
                              headers=bearer(token))
        assert c.status_code == 503 and c.json()["error"]["code"] == "audit_unavailable"
        assert await conn.fetchval("SELECT count(*) FROM personal_access_tokens") == 0  # no unaudited change
    finally:
        await conn.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
    r = await client.get("/v1/auth/whoami", headers=bearer(token))
    assert r.status_code == 200
    assert len(await rows_for(conn, r.headers["x-request-id"])) == 1


async def test_concurrent_requests_are_group_committed(env, scaikey):
    client, conn, _ = env
    token = await client_token(scaikey, CI)
    responses = await asyncio.gather(*(client.get("/v1/auth/whoami", headers=bearer(token)) for _ in range(40)))
    assert all(r.status_code == 200 for r in responses)
    ids = [r.headers["x-request-id"] for r in responses]
    n = await conn.fetchval("SELECT count(*) FROM audit_log WHERE request_id = ANY($1::text[])", ids)
    assert n == 40


async def _sealed_whoamis(client, conn, token: str, n: int) -> list[asyncpg.Record]:
    before = await conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", TENANT)
    for _ in range(n):
        assert (await client.get("/v1/auth/whoami", headers=bearer(token))).status_code == 200
    await seal_all(conn)
    rows = await conn.fetch("SELECT * FROM audit_log WHERE tenant_id = $1 ORDER BY seq", TENANT)
    assert len(rows) == before + n and [r["action"] for r in rows[before:]] == ["whoami"] * n
    result = await verify_tenant(conn, TENANT)
    assert result.ok and result.unsealed == 0 and result.checked == len(rows)  # every row sealed, exactly
    return rows


async def _as_superuser(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    """What an attacker with superuser rights can do: bypass the insert-only trigger."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_audit_log_and_seals_are_insert_only(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    rows = await _sealed_whoamis(client, conn, admin, 2)
    for sql in ("UPDATE audit_log SET identity_id = 'user:nobody' WHERE seq = $1",
                "DELETE FROM audit_log WHERE seq = $1",
                "UPDATE audit_seals SET hash = 'x' WHERE tenant_id = 'x' OR $1 > 0",
                "DELETE FROM audit_seals WHERE $1 > 0"):
        with pytest.raises(asyncpg.RaiseError, match="insert-only"):
            await conn.execute(sql, rows[0]["seq"])
    for table in ("audit_log", "audit_seals"):
        with pytest.raises(asyncpg.RaiseError, match="insert-only"):
            await conn.execute(f"TRUNCATE {table}")
    # the sealer wrote blocks, not rows: the entries are exactly as inserted
    assert await conn.fetchval("SELECT count(*) FROM audit_seals WHERE tenant_id = $1", TENANT) == 1  # one pass
    assert await conn.fetch("SELECT * FROM audit_log WHERE tenant_id = $1 ORDER BY seq", TENANT) == rows


async def test_hash_chain_verify_names_an_edited_row(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    rows = await _sealed_whoamis(client, conn, admin, 5)
    r = await client.get("/v1/audit/verify", headers=bearer(admin))
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["checked"] == len(rows)
    victim = rows[2]
    await _as_superuser(conn, "UPDATE audit_log SET identity_id = 'user:nobody' WHERE id = $1", victim["id"])
    body = (await client.get("/v1/audit/verify", headers=bearer(admin))).json()
    assert body["ok"] is False
    assert body["first_broken"]["id"] == victim["id"] and "edited" in body["first_broken"]["reason"]
    assert body["first_broken"]["chain_seq"] == 3 and body["first_broken"]["block_no"] == 1  # one sealed block


async def test_verify_pinpoints_edited_deleted_and_forged_rows(env, scaikey, capsys):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    rows = await _sealed_whoamis(client, conn, admin, 4)
    burnt = await conn.fetchval("SELECT nextval('audit_log_seq_seq')")  # a gap, as a rolled-back insert leaves
    rows = await _sealed_whoamis(client, conn, admin, 4)  # a second block
    assert (await verify_tenant(conn, TENANT)).ok
    # a deleted row (in the second block) is named by its id
    gone = rows[5]
    await _as_superuser(conn, "DELETE FROM audit_log WHERE seq = $1", gone["seq"])
    result = await verify_tenant(conn, TENANT)
    assert not result.ok and result.first_broken["id"] == gone["id"]
    assert result.first_broken["seq"] == gone["seq"] and "deleted" in result.first_broken["reason"]
    # a forged row inserted into that gap (between the two blocks, so earlier in the chain): now it is first
    cols = [c for c in rows[0].keys() if c != "seq"]
    values = [dict(rows[3])[c] for c in cols]
    values[cols.index("id")] = "log_forged"
    values[cols.index("identity_id")] = "user:innocent"
    placeholders = ", ".join(f"${i + 2}" for i in range(len(cols)))
    await conn.execute(f"INSERT INTO audit_log (seq, {', '.join(cols)}) VALUES ($1, {placeholders})",
                       burnt, *values)
    result = await verify_tenant(conn, TENANT)
    assert not result.ok and result.first_broken["id"] == "log_forged"
    assert "inserted" in result.first_broken["reason"]
    await _as_superuser(conn, "DELETE FROM audit_log WHERE id = 'log_forged'")
    # an edited row earlier still: it is named first
    await _as_superuser(conn, "UPDATE audit_log SET success = false WHERE seq = $1", rows[0]["seq"])
    result = await verify_tenant(conn, TENANT)
    assert not result.ok and result.first_broken["id"] == rows[0]["id"]
    assert "edited" in result.first_broken["reason"] and result.first_broken["chain_seq"] == 1
    # the CLI reports the same first break and exits 1
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["audit", "verify", "--tenant", TENANT]) == 1
    report = orjson.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["tenants"][0]["first_broken"]["id"] == rows[0]["id"]


async def test_verify_names_an_edited_block_and_a_rewritten_tail(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    await _sealed_whoamis(client, conn, admin, 3)
    await _sealed_whoamis(client, conn, admin, 3)
    await _as_superuser(conn, "UPDATE audit_seals SET log_ids[1] = 'log_other' WHERE tenant_id = $1"
                              " AND block_no = 1", TENANT)
    result = await verify_tenant(conn, TENANT)
    assert not result.ok and result.first_broken["block_no"] == 1 and "block" in result.first_broken["reason"]
    await _as_superuser(conn, "DELETE FROM audit_seals WHERE tenant_id = $1", TENANT)
    await _as_superuser(conn, "DELETE FROM audit_log WHERE tenant_id = $1", TENANT)
    result = await verify_tenant(conn, TENANT)
    assert not result.ok and "removed from the end" in result.first_broken["reason"]


async def test_verify_detects_deleted_rows(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    rows = await _sealed_whoamis(client, conn, admin, 4)
    await _as_superuser(conn, "DELETE FROM audit_log WHERE seq = $1", rows[1]["seq"])
    result = await verify_tenant(conn, TENANT)
    assert not result.ok and "deleted" in result.first_broken["reason"]
    assert result.first_broken["chain_seq"] == 2


async def test_unsealed_entries_are_reported_not_broken(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    await _sealed_whoamis(client, conn, admin, 2)
    await client.get("/v1/auth/whoami", headers=bearer(admin))
    result = await verify_tenant(conn, TENANT)
    assert result.ok and result.unsealed == 1
    assert await seal_all(conn) == 1
    result = await verify_tenant(conn, TENANT)
    assert result.ok and result.unsealed == 0


async def test_sealer_waits_for_an_in_flight_writer_with_a_lower_seq(env, scaikey, db_url, monkeypatch):
    """A transaction that drew its seq first but commits last still gets sealed, in seq order."""
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    slow = await asyncpg.connect(db_url)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute("INSERT INTO audit_log (id, tenant_id, ts, identity_id, identity_type, action, success)"
                           " VALUES ('log_slow', $1, now(), 'system:test', 'system', 'rotate', true)", TENANT)
        assert (await client.get("/v1/auth/whoami", headers=bearer(admin))).status_code == 200
        seen_running: list[bool] = []
        real_running = audit_repo.running

        async def running(*args: Any) -> bool:
            still = await real_running(*args)
            seen_running.append(still)
            return still

        monkeypatch.setattr(audit_repo, "running", running)
        sealer = asyncio.create_task(seal_all(conn))
        deadline = asyncio.get_running_loop().time() + 30
        while True not in seen_running:  # the sealer found the slow writer in flight (observed, not slept)
            assert asyncio.get_running_loop().time() < deadline and not sealer.done(), "never saw the writer"
            await asyncio.sleep(0.01)
        assert not sealer.done()  # so it is waiting for the slow writer
        await tx.commit()
        assert await sealer == 2
    finally:
        await slow.close()
    result = await verify_tenant(conn, TENANT)
    assert result.ok and result.checked == 2 and result.unsealed == 0
    blocks = await conn.fetch("SELECT log_ids FROM audit_seals WHERE tenant_id = $1", TENANT)
    assert blocks[0]["log_ids"][0] == "log_slow"


async def test_concurrent_sealers_build_one_chain(env, scaikey, db_url):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    others = [await asyncpg.connect(db_url) for _ in range(3)]
    try:
        for _ in range(3):
            await asyncio.gather(*(client.get("/v1/auth/whoami", headers=bearer(admin)) for _ in range(10)),
                                 *(seal_all(c) for c in others))
        await seal_all(conn)
    finally:
        for c in others:
            await c.close()
    result = await verify_tenant(conn, TENANT)
    assert result.ok and result.checked == 30 and result.unsealed == 0


async def test_pruning_keeps_the_chain_verifiable(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    await _sealed_whoamis(client, conn, admin, 3)  # block 1
    await _sealed_whoamis(client, conn, admin, 3)  # block 2
    await _sealed_whoamis(client, conn, admin, 2)  # block 3
    # age the first two blocks (test-only back-dating): the entries' ts breaks their digests ...
    await _as_superuser(conn, "UPDATE audit_log SET ts = ts - interval '400 days' WHERE seq <= $1",
                        await conn.fetchval("SELECT log_seqs[3] FROM audit_seals WHERE block_no = 2"))
    await _as_superuser(conn, "UPDATE audit_seals SET last_ts = last_ts - interval '400 days'"
                              " WHERE block_no <= 2")
    # ... so the pruner refuses to delete past the broken link
    assert await prune_once(conn, 365, 100) == 0
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 8
    # re-seal everything as if it had been written back then
    await _as_superuser(conn, "DELETE FROM audit_seals")
    await _as_superuser(conn, "DELETE FROM audit_chain_heads")
    rows = await conn.fetch("SELECT * FROM audit_log ORDER BY seq")
    for i, n in enumerate((3, 3, 2)):  # same three blocks
        start = sum((3, 3, 2)[:i])
        assert await seal_once_through(conn, rows[start + n - 1]["seq"]) == n
    assert await prune_once(conn, 365, 100) == 6
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 2
    assert await conn.fetchval("SELECT min(block_no) FROM audit_seals") == 3
    result = await verify_tenant(conn, TENANT)
    assert result.ok, result.first_broken
    assert result.checked == 2
    with pytest.raises(asyncpg.PostgresError):  # ordinary deletes stay refused
        await conn.execute("DELETE FROM audit_log")
    await client.get("/v1/auth/whoami", headers=bearer(admin))  # the chain goes on after the checkpoint
    await seal_all(conn)
    result = await verify_tenant(conn, TENANT)
    assert result.ok and result.checked == 3


async def seal_once_through(conn: asyncpg.Connection, seq: int) -> int:
    """Seal the entries up to ``seq`` as one pass (test helper: the real sealer takes everything settled)."""
    from audit import sealer

    orig = sealer.repo.settled_range

    async def capped(c, after, through, limit):  # type: ignore[no-untyped-def]
        return await orig(c, after, min(through, seq), limit)

    sealer.repo.settled_range = capped  # type: ignore[assignment]
    try:
        return await sealer.seal_once(conn)
    finally:
        sealer.repo.settled_range = orig  # type: ignore[assignment]


async def test_query_filters_cursor_and_newest_first(env, scaikey):
    client, conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    ci = await client_token(scaikey, CI)
    for _ in range(3):
        await client.get("/v1/_test/secret/app/one", headers=bearer(ci))
    await client.get("/v1/_test/secret/forbidden/x", headers=bearer(ci))
    await client.get("/v1/_test/secret/other/two", headers=bearer(ci))
    r = await client.get("/v1/audit/logs", params={"identity_id": "sa:ci-deployer", "limit": 2},
                         headers=bearer(admin))
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["logs"]) == 2 and page["has_more"] is True
    assert page["logs"][0]["secret_path"] == "other/two"  # newest first
    seen = [e["id"] for e in page["logs"]]
    while page["has_more"]:
        page = (await client.get("/v1/audit/logs", params={"identity_id": "sa:ci-deployer", "limit": 2,
                                                           "cursor": page["cursor"]}, headers=bearer(admin))).json()
        seen += [e["id"] for e in page["logs"]]
    assert len(seen) == len(set(seen)) == 5
    r = await client.get("/v1/audit/logs", params={"path_prefix": "app/", "action": "read,write"},
                         headers=bearer(admin))
    assert [e["secret_path"] for e in r.json()["logs"]] == ["app/one"] * 3
    r = await client.get("/v1/audit/logs", params={"success": "false", "identity_type": "service_account"},
                         headers=bearer(admin))
    assert {e["error_code"] for e in r.json()["logs"]} == {"access_denied"}
    bad = await client.get("/v1/audit/logs", params={"cursor": "!!notacursor"}, headers=bearer(admin))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    too_many = await client.get("/v1/audit/logs", params={"limit": 1001}, headers=bearer(admin))
    assert too_many.status_code == 422
    # the audit query itself was audited
    [row] = await rows_for(conn, r.headers["x-request-id"])
    assert row["action"] == "audit_query"


async def test_trails_summary_and_export(env, scaikey):
    client, _conn, _ = env
    admin = await client_token(scaikey, ADMIN)
    ci = await client_token(scaikey, CI)
    alice = await user_token(scaikey, "alice@acme.example", scope="secrets:read")
    for tok in (ci, ci, alice):
        await client.get("/v1/_test/secret/db/main", headers=bearer(tok))
    trail = (await client.get("/v1/audit/secrets/db/main", headers=bearer(admin))).json()
    assert len(trail["logs"]) == 3
    assert trail["summary"]["reads_30d"] == 3 and trail["summary"]["unique_readers_30d"] == 2
    assert trail["summary"]["last_read_at"].endswith("Z")
    ident = (await client.get("/v1/audit/identities/sa:ci-deployer", headers=bearer(admin))).json()
    assert ident["summary"]["paths_touched"] == ["db/main"] and ident["summary"]["actions_30d"]["read"] == 2
    summ_r = await client.get("/v1/audit/summary", headers=bearer(admin))
    summ = summ_r.json()
    assert summ["total_events"] == summ["successful_events"] + summ["failed_events"]
    stored = await _conn.fetch(  # what the summary saw: every row but its own request's (written after it)
        "SELECT success FROM audit_log WHERE tenant_id = $1 AND request_id IS DISTINCT FROM $2", TENANT,
        summ_r.headers["x-request-id"])
    assert (summ["successful_events"], summ["failed_events"]) == (
        sum(r["success"] for r in stored), sum(not r["success"] for r in stored))
    assert summ["by_action"]["read"] == 3 and summ["top_paths"][0] == {"path": "db/main", "count": 3}
    async with client.stream("GET", "/v1/audit/logs/export", params={"action": "read"},
                             headers=bearer(admin)) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) async for line in resp.aiter_lines() if line]
    assert [e["identity_id"] for e in lines] == ["sa:ci-deployer", "sa:ci-deployer", "user:alice@acme.example"]
    no_scope = await client.get("/v1/audit/logs/export", headers=bearer(ci))
    assert no_scope.status_code == 403


async def test_sensitive_extra_fields_are_hmacd(env, scaikey):
    from audit.hashing import hash_value
    from audit.recorder import system_context

    client, conn, settings = env
    key = settings.audit_hmac_key.get_secret_value().encode()
    recorder = client._transport.app.state.sv.components["audit"]  # type: ignore[attr-defined]
    ctx = system_context("rotation", TENANT, workflow_id="rotate/tnt/x")
    await recorder.record(ctx, action="rotate", path="db/main",
                          extra={"hashed": {"client_ip": "1.2.3.4", "n": [1, True]}, "password": "hunter2",
                                 "reason": "scheduled"})
    row = await conn.fetchrow("SELECT * FROM audit_log WHERE correlation_id = 'rotate/tnt/x'")
    extra = orjson.loads(row["extra_data"])
    assert "hunter2" not in row["extra_data"]
    assert extra["password"] == hash_value(key, "hunter2")
    assert extra["hashed"] == {"client_ip": hash_value(key, "1.2.3.4"),
                               "n": [hash_value(key, 1), hash_value(key, True)]}
    assert extra["reason"] == "scheduled"
    assert (row["identity_id"], row["identity_type"]) == ("system:rotation", "system")


def test_migration_downgrade_and_upgrade(db_url):
    from db.migrate import downgrade, status, upgrade_to_head
    from tests.fixtures.services import run_maybe_async

    run_maybe_async(downgrade, db_url, "0002")
    assert status(db_url).current == "0002"
    run_maybe_async(upgrade_to_head, db_url)
    assert status(db_url).up_to_date
