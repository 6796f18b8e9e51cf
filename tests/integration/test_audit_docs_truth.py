"""Issue 21 item 4, audit: /v1/audit/logs/export honours ``limit``; audit ``extra_data`` never carries the
secrets read cache's internal generation counter (the rate limiter stored it in ``ctx.extra``, which every audit
entry of the request merges)."""

from __future__ import annotations

import asyncio
import time

import orjson

from tests.helpers import ADMIN, bearer, client_token
from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import Api

api = secrets_helpers.api  # the fixture


async def _entries(api: Api, admin: dict[str, str], action: str, want: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        r = await api.client.get("/v1/audit/logs", params={"action": action, "limit": 1000}, headers=admin)
        assert r.status_code == 200, r.text
        logs = list(r.json()["logs"])
        if len(logs) >= want or time.monotonic() > deadline:
            return logs
        await asyncio.sleep(0.2)


async def test_audit_extra_data_has_no_cache_generation(api: Api) -> None:
    h = await api.token()
    for i in range(3):
        r = await api.put("gen/db", {"password": f"v{i}"}, h)
        assert r.status_code in (200, 201), r.text
        r = await api.client.get("/v1/secrets/gen/db", headers=h)
        assert r.status_code == 200, r.text
    assert api.component("rate_limiter") is not None  # the limiter reads the generation on every secret read
    admin = bearer(await client_token(api.scaikey, ADMIN))
    reads = await _entries(api, admin, "read", 3)
    assert len(reads) >= 3
    for entry in reads:
        extra = entry.get("extra_data") or {}
        assert "secrets_gen" not in extra and not any("gen" in k for k in extra), extra
    rows = await api.sql("SELECT extra_data FROM audit_log WHERE action = 'read' AND secret_path = 'gen/db'")
    assert rows and all("secrets_gen" not in (r["extra_data"] or "") for r in rows)


async def test_export_honours_limit(api: Api) -> None:
    h = await api.token()
    for i in range(5):
        assert (await api.put(f"exp/s{i}", {"v": i}, h)).status_code in (200, 201)
    admin = bearer(await client_token(api.scaikey, ADMIN))
    await _entries(api, admin, "write", 5)
    r = await api.client.get("/v1/audit/logs/export", params={"action": "write"}, headers=admin)
    assert r.status_code == 200, r.text
    everything = [orjson.loads(line) for line in r.text.splitlines()]
    assert len(everything) >= 5
    r = await api.client.get("/v1/audit/logs/export", params={"action": "write", "limit": 2}, headers=admin)
    assert r.status_code == 200, r.text
    first_two = [orjson.loads(line) for line in r.text.splitlines()]
    assert [e["id"] for e in first_two] == [e["id"] for e in everything[:2]]  # oldest first, capped
    for bad in ("0", str(10**30)):  # (export is limited to 5 a minute)
        r = await api.client.get("/v1/audit/logs/export", params={"limit": bad}, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", (bad, r.text)
