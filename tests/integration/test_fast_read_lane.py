"""The secret read enters ScaiVault's request middleware directly (api/app.py ``_App``), outside FastAPI's own
error, telemetry and body-limit layers: it must still behave like every other route, through HTTP."""

from __future__ import annotations

from typing import Any

import fastapi
import pytest

from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import Api

api = secrets_helpers.api  # the fixture

pytestmark = pytest.mark.asyncio


async def test_secret_reads_skip_fastapis_stack_and_keep_request_ids_and_tenant_prefix(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await api.token()
    assert (await api.put("lane/one", {"v": "1"}, h)).status_code == 201

    async def not_here(self: Any, scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"FastAPI's stack served {scope['method']} {scope['path']}")

    monkeypatch.setattr(fastapi.FastAPI, "__call__", not_here)
    r = await api.client.get("/v1/secrets/lane/one", headers={**h, "X-Request-Id": "req_lane-1"})
    assert r.status_code == 200 and r.json()["data"] == {"v": "1"}
    assert r.headers["x-request-id"] == "req_lane-1"
    r = await api.client.get("/v1/t/tnt_acme_prod/secrets/lane/one", headers=h)
    assert r.status_code == 200 and r.json()["data"] == {"v": "1"}
    r = await api.client.get("/v1/secrets/lane/missing", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    r = await api.client.get("/v1/secrets/lane/one")
    assert r.status_code == 401 and r.json()["error"]["request_id"] == r.headers["x-request-id"]


async def test_an_unexpected_error_in_the_fast_lane_is_the_documented_500_envelope(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await api.token()
    await api.put("lane/boom", {"v": "1"}, h)
    service = api.component("secrets")

    async def boom(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("not a secret value")

    monkeypatch.setattr(service, "read", boom)
    r = await api.client.get("/v1/secrets/lane/boom", headers=h)
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["code"] == "internal_error" and err["request_id"] == r.headers["x-request-id"]
    assert "not a secret value" not in r.text
    monkeypatch.undo()
    assert (await api.client.get("/v1/secrets/lane/boom", headers=h)).status_code == 200
