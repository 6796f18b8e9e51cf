"""devstack.services starts real servers that answer, and stops them by their own pid."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from devstack import services as svc
from devstack.admin_token import admin_client_secret, mint_admin_token


@pytest.fixture
def handles() -> Iterator[list[svc.Handle]]:
    started: list[svc.Handle] = []
    yield started
    svc.stop_all(started, timeout=5)


def _assert_stopped(handle: svc.Handle) -> None:
    handle.stop(timeout=10)
    assert not handle.alive()
    assert not svc.pid_alive(handle.pid)
    # A daemon (the postmaster) is reaped by init a moment later; wait for the pid to vanish entirely.
    deadline = time.monotonic() + 30
    while Path(f"/proc/{handle.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(handle.pid, 0)


async def test_postgres_answers_keeps_data_and_stops_by_pid(
    tmp_path: Path, handles: list[svc.Handle]
) -> None:
    pg = svc.start_postgres(tmp_path / "pg", svc.free_port(), fast_unsafe=True)
    handles.append(pg)
    assert pg.url.endswith("/scaivault")
    conn = await asyncpg.connect(pg.url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW max_connections") == "300"
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    finally:
        await conn.close()
    _assert_stopped(pg)

    again = svc.start_postgres(tmp_path / "pg", svc.free_port())  # same data dir, new port
    handles.append(again)
    assert again.pid != pg.pid
    conn = await asyncpg.connect(again.url)
    try:
        assert await conn.fetchval("SELECT v FROM kept") == "still here"
        assert await conn.fetchval("SHOW fsync") == "on"
    finally:
        await conn.close()
    _assert_stopped(again)


async def test_redis_answers_and_stops_by_pid(tmp_path: Path, handles: list[svc.Handle]) -> None:
    port = svc.free_port()
    r = svc.start_redis(tmp_path / "redis", port)
    handles.append(r)
    client = aioredis.from_url(r.url)
    try:
        assert await client.ping() is True
        assert (await client.config_get("bind"))["bind"] == "127.0.0.1"
    finally:
        await client.aclose()
    _assert_stopped(r)
    assert not svc.port_open("127.0.0.1", port)


async def test_temporal_answers_and_stops_by_pid(tmp_path: Path, handles: list[svc.Handle]) -> None:
    ui_port = svc.free_port()
    t = svc.start_temporal(tmp_path / "temporal", svc.free_port(), ui_port)
    handles.append(t)
    assert t.url == f"http://127.0.0.1:{ui_port}"
    client = await Client.connect(t.address, namespace="default")
    desc = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert desc.namespace_info.name == "default"
    assert (tmp_path / "temporal" / "temporal.db").exists()
    _assert_stopped(t)


def test_moto_answers_and_stops_by_pid(tmp_path: Path, handles: list[svc.Handle]) -> None:
    import httpx

    m = svc.start_moto(svc.free_port(), log_dir=tmp_path)
    handles.append(m)
    assert httpx.post(m.url + "/moto-api/reset").status_code == 200
    _assert_stopped(m)


def test_start_process_failure_reports_log_tail(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]
    with pytest.raises(svc.ServiceStartError) as err:
        svc.start_process("broken", argv, None, tmp_path / "broken.log", lambda: False, timeout=10)
    assert "exited before it became ready" in str(err.value)
    assert "boom: bad config" in str(err.value)


def test_start_process_timeout_stops_the_child(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)"]
    log = tmp_path / "slow.log"
    with pytest.raises(svc.ServiceStartError, match="not ready after 1s") as err:
        svc.start_process("slow", argv, None, log, lambda: False, timeout=1)
    line = next(line for line in log.read_text().splitlines() if line.startswith("pid "))
    assert line in str(err.value)
    assert not svc.pid_alive(int(line.split()[1]))


def test_handle_kill_sends_sigkill(tmp_path: Path, handles: list[svc.Handle]) -> None:
    argv = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    ]
    h = svc.start_process("stubborn", argv, None, tmp_path / "s.log", lambda: True, timeout=5)
    handles.append(h)
    h.stop(timeout=0.5)  # SIGTERM is ignored, so stop() must escalate to SIGKILL
    assert not h.alive()


def test_pick_port_falls_back_when_preferred_is_taken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.delenv("SCAIVAULT_DEV_X_PORT", raising=False)
        chosen = svc.pick_port(taken, "SCAIVAULT_DEV_X_PORT")
        assert chosen != taken
        assert svc.port_is_free(chosen)
        assert f"port {taken}" in capsys.readouterr().out

        monkeypatch.setenv("SCAIVAULT_DEV_X_PORT", str(taken))  # env wins, but is taken too
        assert svc.pick_port(1, "SCAIVAULT_DEV_X_PORT") != taken


def test_pick_port_uses_env_then_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    free = svc.free_port()
    monkeypatch.setenv("SCAIVAULT_DEV_X_PORT", str(free))
    assert svc.pick_port(1, "SCAIVAULT_DEV_X_PORT") == free
    monkeypatch.delenv("SCAIVAULT_DEV_X_PORT")
    other = svc.free_port()
    assert svc.pick_port(other, "SCAIVAULT_DEV_X_PORT") == other
    monkeypatch.setenv("SCAIVAULT_DEV_X_PORT", "not-a-port")
    assert svc.pick_port(other, "SCAIVAULT_DEV_X_PORT") == other


def test_dev_secrets_are_generated_once_with_private_modes(tmp_path: Path) -> None:
    from devstack.run import SECRET_NAMES, load_or_create_secrets

    first = load_or_create_secrets(tmp_path)
    second = load_or_create_secrets(tmp_path)
    assert first == second
    assert set(SECRET_NAMES) <= set(first)
    assert len({first[n] for n in SECRET_NAMES}) == len(SECRET_NAMES)
    kms = tmp_path / "kms.key"
    assert len(base64.b64decode(kms.read_text().strip(), validate=True)) == 32
    for path in (kms, tmp_path / "secrets.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads((tmp_path / "secrets.json").read_text())["TOKEN_HMAC_KEY"] == first["TOKEN_HMAC_KEY"]


def test_admin_token_helpers_fail_soft(tmp_path: Path) -> None:
    seed = tmp_path / "dev.json"
    seed.write_text(json.dumps({"tenants": [{"apps": [{"client_id": "dev-admin", "client_secret": "s3"}]}]}))
    assert admin_client_secret(seed) == "s3"
    assert admin_client_secret(tmp_path / "missing.json") is None
    assert mint_admin_token(f"http://127.0.0.1:{svc.free_port()}", seed_file=seed, timeout=2) is None


# --------------------------------------------------------------------------------------------- fixtures


def test_db_url_is_a_migrated_private_clone(db_url: str, template_db: str, services) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    from db.migrate import status

    assert template_db not in db_url
    assert status(db_url).up_to_date
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE only_in_this_clone (v int)")
    with psycopg.connect(services.pg_admin_url.rsplit("/", 1)[0] + "/" + template_db) as conn:
        found = conn.execute("SELECT to_regclass('only_in_this_clone')").fetchone()
    assert found == (None,)


def test_redis_clean_flushes_before_the_test(services, request) -> None:  # type: ignore[no-untyped-def]
    """Self-contained (was two tests relying on running in file order): leave a key, then let the fixture
    run, and read the database back."""
    import redis

    client = redis.Redis.from_url(services.redis_url)
    try:
        client.set("left-over", "1")
        assert client.get("left-over") == b"1"
        url = request.getfixturevalue("redis_clean")  # the fixture runs now, after the key was written
        assert url == services.redis_url
        assert client.get("left-over") is None and client.dbsize() == 0
    finally:
        client.close()


def test_settings_factory_and_use_settings(settings_factory, use_settings, db_url: str) -> None:  # type: ignore[no-untyped-def]
    a = settings_factory()
    b = settings_factory(log_level="debug", RATE_LIMIT_ENABLED=False)
    assert a.env == "test" and a.database_url == db_url
    assert a.temporal_task_queue_prefix == b.temporal_task_queue_prefix
    assert a.temporal_codec_key.get_secret_value() == b.temporal_codec_key.get_secret_value()
    assert b.log_level == "debug" and b.rate_limit_enabled is False
    assert a.scaikey_base_url == "http://127.0.0.1:9"
    from core.settings import get_settings

    applied = use_settings(b)
    assert get_settings() is applied
    assert applied.database_url == db_url and applied.rate_limit_enabled is False
    assert applied.token_hmac_key.get_secret_value() == b.token_hmac_key.get_secret_value()


async def test_app_client_serves_readiness(app_client) -> None:  # type: ignore[no-untyped-def]
    resp = await app_client.get("/v1/health/ready")
    assert resp.status_code == 200, resp.text


async def test_temporal_from_services_fixture(services) -> None:  # type: ignore[no-untyped-def]
    client = await Client.connect(services.temporal_address)
    desc = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert desc.namespace_info.name == "default"


async def test_worker_process_starts_and_can_be_killed(worker_process) -> None:  # type: ignore[no-untyped-def]
    handle = worker_process()
    assert handle.alive()
    assert svc.WORKER_READY_TEXT in handle.log_tail(200)
    handle.kill()
    assert not handle.alive()


async def test_api_server_subprocess_answers(api_server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    async with httpx.AsyncClient() as client:
        resp = await client.get(api_server.url + "/v1/health/ready")
    assert resp.status_code == 200, resp.text
    assert svc.pid_alive(api_server.pid)


def test_moto_fixture_serves_aws_apis(moto: str) -> None:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="devstack-check")
    assert any(u["UserName"] == "devstack-check" for u in iam.list_users()["Users"])


def test_scaikey_fixture_feeds_settings(scaikey: str, settings_factory, scaikey_client_secret: str) -> None:  # type: ignore[no-untyped-def]
    import httpx

    assert httpx.get(scaikey + "/_emulator/health").status_code == 200
    s = settings_factory()
    assert s.scaikey_base_url == scaikey
    assert s.scaikey_client_secret.get_secret_value() == scaikey_client_secret


def test_mint_admin_token_from_the_emulator(scaikey: str) -> None:
    import jwt

    token = mint_admin_token(scaikey)
    assert token is not None, "the emulator refused client_credentials for dev-admin"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "dev-admin"
    assert claims["aud"] in ("scaivault", ["scaivault"])
