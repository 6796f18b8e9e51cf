"""Rotation through an outside system (issue 14 item 4): create at the provider, store as pending, test, promote;
a failed test rolls back and leaves the current version in place. A test receiver plays the outside system."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from clients.webhook_verify import VerificationError, verify

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


class Provider:
    """Answers ``create`` with a fresh credential, ``test`` with ``test_status``; records verified steps."""

    def __init__(self, secret: str, test_status: int = 200) -> None:
        self.secret, self.test_status = secret, test_status
        self.steps: list[dict[str, Any]] = []
        self.minted: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    verify(body, dict(self.headers.items()), [provider.secret])
                except VerificationError:
                    return self._answer(401, {})
                doc = json.loads(body)
                doc["_type"] = self.headers.get("X-ScaiVault-Event-Type")
                provider.steps.append(doc)
                if doc["step"] == "create":
                    cred = f"provider-minted-{len(provider.minted) + 1}-{uuid.uuid4().hex[:8]}"
                    provider.minted.append(cred)
                    return self._answer(201, {"data": {"client_secret": cred}})
                if doc["step"] == "test":
                    return self._answer(provider.test_status, {"ok": provider.test_status < 300})
                return self._answer(200, {"ok": True})

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                payload = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rotate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _setup(stack, test_status: int) -> tuple[Provider, dict[str, Any], str]:
    secret = f"whsec-{uuid.uuid4().hex}"
    provider = Provider(secret, test_status)
    r = await stack.api.post("/v1/webhooks", headers=stack.admin, json={
        "name": f"provider-{uuid.uuid4().hex[:6]}", "url": provider.url, "secret": secret,
        "events": ["certificate.issued"]})  # its endpoint serves the saga, not event delivery
    assert r.status_code == 201, r.text
    pol = await stack.policy(auto_generate=True, rotation_webhook_id=r.json()["id"])
    assert pol["rotation_webhook_id"] == r.json()["id"]
    path = f"rot/outside/{uuid.uuid4().hex[:10]}"
    r = await stack.put(path, {"client_secret": "original"}, rotation_policy_id=pol["id"])
    assert r.status_code == 201, r.text
    return provider, pol, path


async def _until(fn: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := await fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)
    return got


async def test_saga_creates_stores_tests_and_promotes(stack_factory, worker_process) -> None:
    stack = await stack_factory(rotation_failure_backoff_seconds=3600)
    worker = worker_process(stack.settings)
    provider, _, path = await _setup(stack, 200)
    try:
        r = await stack.api.post(f"/v1/secrets/{path}:rotate", headers=stack.admin)
        assert r.status_code == 200, r.text
        try:
            await _until(lambda: stack.events("rotation.completed", path=path), "the promotion")
        except AssertionError:
            print(worker.log_tail(60))
            raise
        assert await stack.versions(path) == [1, 2]
        got = (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).json()["data"]
        assert got == {"client_secret": provider.minted[0]} and len(provider.minted) == 1
        await _until(lambda: asyncio.sleep(0, len(provider.steps) >= 3), "the promote call")
        assert [s["step"] for s in provider.steps] == ["create", "test", "promote"]
        assert {s["rotation_id"] for s in provider.steps} == {provider.steps[0]["rotation_id"]}
        assert provider.steps[0]["_type"] == "rotation_saga.create" and provider.steps[2]["new_version"] == 2
        [rot] = await stack.events("secret.rotated", path=path)
        assert rot["data"]["auto_generated"] is False and rot["identity_id"] == "system:rotation-scheduler"
        assert await stack.sql("SELECT 1 FROM rotation_staged s JOIN secrets x ON x.id = s.secret_id"
                               " WHERE x.path = $1", path) == []
        # the minted credential never reached the outbox or the audit log
        leaked = await stack.sql("SELECT 1 FROM events WHERE data::text LIKE $1 UNION ALL"
                                 " SELECT 1 FROM audit_log WHERE extra_data::text LIKE $1",
                                 f"%{provider.minted[0]}%")
        assert leaked == []
    finally:
        provider.stop()


async def test_failed_test_rolls_back_and_keeps_the_current_version(stack_factory, worker_process) -> None:
    stack = await stack_factory(rotation_failure_backoff_seconds=3600)
    worker_process(stack.settings)
    provider, pol, path = await _setup(stack, 500)
    try:
        r = await stack.api.post(f"/v1/secrets/{path}:rotate", headers=stack.admin)
        assert r.status_code == 200, r.text
        failed = await _until(lambda: stack.events("rotation.failed", path=path), "the failed rotation")
        assert failed[0]["data"]["error"]["code"] == "validation_error"
        assert [s["step"] for s in provider.steps] == ["create", "test", "rollback"]
        assert await stack.versions(path) == [1]
        got = (await stack.api.get(f"/v1/secrets/{path}", headers=stack.admin)).json()["data"]
        assert got == {"client_secret": "original"}
        assert await stack.sql("SELECT 1 FROM rotation_staged s JOIN secrets x ON x.id = s.secret_id"
                               " WHERE x.path = $1", path) == []
        hist = (await stack.api.get(f"/v1/rotation/policies/{pol['id']}/history", headers=stack.admin)).json()["data"]
        assert [(h["status"], h["error"]["code"]) for h in hist] == [("failed", "validation_error")]
        assert await stack.events("secret.rotated", "rotation.completed", path=path) == []
    finally:
        provider.stop()


async def test_rotation_webhook_must_exist_and_needs_auto_generate(stack) -> None:
    r = await stack.api.post("/v1/rotation/policies", headers=stack.admin, json={
        "name": f"x-{uuid.uuid4().hex[:6]}", "interval": "30d", "auto_generate": True,
        "rotation_webhook_id": "wh_missing"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found"
