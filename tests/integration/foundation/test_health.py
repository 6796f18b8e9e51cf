"""Health as documented (spec core.md §10.8, issue 12 item 7): readiness names, Temporal outside readiness,
component readiness checks, and what /v1/health/detailed reports about the pool and the KMS root key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from devstack import services as svc
from tests.helpers import ADMIN, CI, bearer, client_token, grant, reset_emulator


@pytest.fixture
async def admin(scaikey: str) -> dict[str, str]:
    await reset_emulator(scaikey)
    return bearer(await client_token(scaikey, ADMIN))


async def test_temporal_down_is_reported_but_does_not_make_the_api_unready(settings_factory, make_app_client,
                                                                          redis_clean, admin):
    settings = settings_factory(temporal_address=f"127.0.0.1:{svc.free_port()}")  # nothing listens there
    async with make_app_client(settings) as client:
        r = await client.get("/v1/health/ready")
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ready", "checks": {**{k: "ok" for k in ("database", "redis", "encryption")},
                                                          **{k: v for k, v in r.json()["checks"].items()
                                                             if k not in ("database", "redis", "encryption")}}}
        assert "temporal" not in r.json()["checks"]
        body = (await client.get("/v1/health/detailed", headers=admin)).json()
        assert body["checks"]["temporal"]["status"] == "error" and "latency_ms" in body["checks"]["temporal"]
        assert body["status"] == "degraded"  # not unhealthy: the database is fine


async def test_component_readiness_checks_still_count(settings_factory, make_app_client, redis_clean, admin):
    """A component (e.g. the ScaiKey introspection check) registers a readiness check in health_extras."""
    async with make_app_client(settings_factory(health_cache_seconds=0)) as client:
        state = client._transport.app.state.sv  # type: ignore[attr-defined]

        async def misconfigured() -> dict[str, Any] | None:
            raise RuntimeError("introspection answered 401: check SCAIKEY_CLIENT_SECRET")

        state.components.setdefault("health_extras", {})["scaikey_introspection"] = misconfigured
        r = await client.get("/v1/health/ready")
        assert r.status_code == 503
        assert r.json()["errors"] == {"scaikey_introspection": "introspection answered 401: check SCAIKEY_CLIENT_SECRET"}
        assert r.json()["checks"]["database"] == "ok"
        body = (await client.get("/v1/health/detailed", headers=admin)).json()
        assert body["status"] == "degraded" and body["checks"]["scaikey_introspection"]["status"] == "error"


async def test_detailed_reports_the_kms_key_status_and_last_rotation(settings_factory, make_app_client,
                                                                     redis_clean, admin, scaikey):
    settings = settings_factory()
    async with make_app_client(settings) as client:
        await grant(client, admin, ["sa:ci-deployer"], pattern="app/**")
        ci = bearer(await client_token(scaikey, CI))
        r = await client.put("/v1/secrets/app/x", json={"data": {"k": "v"}}, headers=ci)  # creates a partner key
        assert r.status_code == 201, r.text
        enc = (await client.get("/v1/health/detailed", headers=admin)).json()["checks"]["encryption"]
        assert enc["status"] == "ok" and enc["key_status"] == "active" and enc["last_rotation"] is None
        assert enc["partner_keys"] >= 1 and enc["partner_keys_on_previous_root"] == 0
        # a root rotation that re-wrapped the keys (scaivault kms rotate), and one key still on an older root
        when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await conn.execute("UPDATE partner_keys SET rewrapped_at = $1", when)
            await conn.execute("INSERT INTO partner_keys (partner_id, version, wrapped, kms_key_id, created_at)"
                               " VALUES ('prt_health_test', 1, '\\x00'::bytea, 'local:retired', now())")
        finally:
            await conn.close()
        enc = (await client.get("/v1/health/detailed", headers=admin)).json()["checks"]["encryption"]
        assert enc["last_rotation"] == "2026-11-30T12:00:00Z"
        assert enc["key_status"] == "rotation_pending" and enc["partner_keys_on_previous_root"] == 1
