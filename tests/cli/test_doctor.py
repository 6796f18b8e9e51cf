"""``scaivault doctor`` against a real stack (API and worker subprocesses, PostgreSQL, Temporal, the ScaiKey
emulator, and a Redis of this test's own): healthy exits 0; an unreachable webhook, an expired token and a
stopped Redis each exit 1 naming the failure."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest

from devstack import services as svc
from tests.fixtures.app import REPO_ROOT, subprocess_env
from tests.helpers import ADMIN, TENANT, bearer, client_token, grant, user_token
from tests.webhook_receiver import Receiver

ALL = ("read", "write", "delete", "list", "rotate", "admin")


def doctor(settings, url: str, token: str, tmp_path, *extra: str) -> tuple[int, dict]:
    env = subprocess_env(settings)
    env["SCAIVAULT_CONFIG"] = str(tmp_path / "no-config.json")  # never the developer's own CLI config
    for k in ("SCAIVAULT_URL", "SCAIVAULT_TOKEN", "SCAIVAULT_TENANT_ID"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, "-m", "cli", "doctor", "--url", url, "--token", token, "--json", *extra],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert out.stdout.strip(), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


async def _wait_sync(url: str, h: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/v1/identity/sync", params={"tenant_id": TENANT}, headers=h)
        assert r.status_code == 202, r.text
        sync_id = r.json()["sync_id"]
        deadline = time.monotonic() + 90
        while True:
            body = (await c.get(f"/v1/identity/sync/{sync_id}", headers=h)).json()
            if body["status"] in ("succeeded", "failed", "skipped"):
                assert body["status"] == "succeeded", body
                return
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.3)


@pytest.fixture
def own_redis(services, tmp_path):
    port = svc.free_port()
    handle = svc.start_redis(tmp_path / "redis", port)
    try:
        yield handle, f"redis://127.0.0.1:{port}/0"
    finally:
        if handle.alive():
            handle.stop()


async def test_doctor_healthy_then_names_each_failure(scaikey, settings_factory, api_server_factory,
                                                     worker_process, own_redis, tmp_path):
    redis_handle, redis_url = own_redis
    settings = settings_factory(redis_url=redis_url, webhook_allow_private=True, health_cache_seconds=0)
    api = api_server_factory(settings)
    worker_process(settings)
    admin = await client_token(scaikey, ADMIN)
    h = bearer(admin)
    hook_secret = secrets.token_urlsafe(32)
    rx = Receiver([hook_secret]).start()
    try:
        async with httpx.AsyncClient(base_url=api.url) as c:
            await grant(c, h, ["sa:dev-admin"], permissions=ALL)
            r = await c.post("/v1/webhooks", headers=h, json={"name": "ok-hook", "url": rx.url,
                                                              "secret": hook_secret, "events": ["secret.*"]})
            assert r.status_code == 201, r.text
        await _wait_sync(api.url, h)

        # healthy: exit 0, every check ok (or skipped), the policy dry run allowed, the sync's users_method shown
        code, report = doctor(settings, api.url, admin, tmp_path, "--path", "apps/web/db")
        checks = by_name(report)
        assert code == 0 and report["healthy"] is True, report
        assert {c["status"] for c in report["checks"]} <= {"ok", "skip"}, report
        assert set(checks) >= {"api", "token", "health", "policy", "webhooks", "identity", "migrations",
                               "workflows", "clock"}
        for name in ("token", "health", "policy", "webhooks", "identity", "migrations", "workflows", "clock"):
            assert checks[name]["status"] == "ok", checks[name]
        assert "users_method effective_users" in checks["identity"]["summary"]
        assert checks["token"]["details"]["identity_id"] == "sa:dev-admin"

        # an unreachable webhook endpoint: exit 1, the webhooks check names it
        dead = f"http://127.0.0.1:{svc.free_port()}/hook"
        async with httpx.AsyncClient(base_url=api.url) as c:
            r = await c.post("/v1/webhooks", headers=h, json={"name": "dead-hook", "url": dead,
                                                              "secret": hook_secret, "events": ["secret.*"]})
            assert r.status_code == 201, r.text
            dead_id = r.json()["id"]
        code, report = doctor(settings, api.url, admin, tmp_path)
        checks = by_name(report)
        assert code == 1 and report["failed"] == ["webhooks"], report
        assert "dead-hook" in checks["webhooks"]["summary"] and dead in checks["webhooks"]["summary"]
        async with httpx.AsyncClient(base_url=api.url) as c:
            assert (await c.delete(f"/v1/webhooks/{dead_id}", headers=h)).status_code == 204

        # an expired token: exit 1, the token check says token_expired and what to do
        expired = await user_token(scaikey, "alice@acme.example", scope="admin", expired=True)
        code, report = doctor(settings, api.url, expired, tmp_path)
        checks = by_name(report)
        assert code == 1 and "token" in report["failed"], report
        assert "token_expired" in checks["token"]["summary"] and "expired" in checks["token"]["hint"]

        # Redis stopped (this test's own, by pid): exit 1, the health check names redis
        redis_handle.stop()
        deadline = time.monotonic() + 60
        while True:
            code, report = doctor(settings, api.url, admin, tmp_path, "--no-webhook-test")
            checks = by_name(report)
            if code == 1 and "health" in report["failed"]:
                break
            assert time.monotonic() < deadline, report
            await asyncio.sleep(1)
        assert "redis" in checks["health"]["summary"], checks["health"]
    finally:
        rx.stop()
        os.environ.pop("SCAIVAULT_CONFIG", None)
