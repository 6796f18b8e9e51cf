"""HTTP conventions: the error envelope, request ids, health and metrics (spec core.md §8, §10.8, §12)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from devstack import services as svc
from tests.helpers import ADMIN, CI, bearer, client_token


async def test_liveness_and_version_need_no_auth(app_client):
    r = await app_client.get("/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    assert (await app_client.get("/v1/version")).json()["api_version"] == "v1"


async def test_ready_with_every_dependency_up(app_client):
    r = await app_client.get("/v1/health/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    # spec core.md §10.8 names; Temporal is not a readiness check (see /detailed)
    assert {k: body["checks"][k] for k in ("database", "redis", "encryption")} == {
        "database": "ok", "redis": "ok", "encryption": "ok"}
    assert "temporal" not in body["checks"] and "postgres" not in body["checks"]


async def test_detailed_health_reports_latency_pool_and_version(app_client, scaikey):
    admin = bearer(await client_token(scaikey, ADMIN))
    body = (await app_client.get("/v1/health/detailed", headers=admin)).json()
    assert body["version"] == "0.1.0" and body["status"] == "healthy", body
    pg = body["checks"]["database"]
    assert pg["status"] == "ok" and pg["latency_ms"] >= 0
    assert pg["pool_size"] == pg["pool_available"] + pg["pool_in_use"]
    for dep in ("redis", "temporal", "encryption"):
        assert body["checks"][dep]["status"] == "ok"
        assert "latency_ms" in body["checks"][dep]
    enc = body["checks"]["encryption"]
    assert enc["provider"] == "local" and enc["key_status"] == "active" and enc["key_id"]
    assert "last_rotation" in enc and body["checks"]["redis"]["memory_used_mb"] >= 0


async def _ready_until(client: httpx.AsyncClient, status: int, deadline: float = 30.0) -> httpx.Response:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        r = await client.get("/v1/health/ready")
        if r.status_code == status or loop.time() > end:
            assert r.status_code == status, r.text
            return r
        await asyncio.sleep(0.2)


async def test_ready_is_503_naming_redis_when_redis_stops(settings_factory, make_app_client, stack_tmp_dir, scaikey):
    port = svc.free_port()
    redis = svc.start_redis(stack_tmp_dir / f"redis-{port}", port)
    try:
        settings = settings_factory(redis_url=f"redis://127.0.0.1:{port}/0")
        async with make_app_client(settings) as client:
            admin = bearer(await client_token(scaikey, ADMIN))
            assert (await client.get("/v1/health/ready")).status_code == 200
            redis.stop()
            r = await _ready_until(client, 503)  # a result is shared for HEALTH_CACHE_SECONDS (1 s)
            body = r.json()
            assert body["status"] == "not_ready"
            assert body["checks"]["redis"] == "error"
            assert body["checks"]["database"] == "ok"
            assert set(body["errors"]) == {"redis"}
            detailed = (await client.get("/v1/health/detailed", headers=admin)).json()
            assert detailed["status"] == "degraded" and detailed["checks"]["redis"]["status"] == "error"
            # liveness does not depend on anything
            assert (await client.get("/v1/health")).status_code == 200
    finally:
        redis.stop()


async def test_unknown_route_and_wrong_method_use_the_envelope(app_client):
    r = await app_client.get("/v1/does-not-exist", headers={"X-Request-ID": "trace-123"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "trace-123"
    assert r.json() == {"error": {"code": "not_found", "message": "no route for GET /v1/does-not-exist",
                                  "details": {}, "request_id": "trace-123"}}
    r = await app_client.delete("/v1/health")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_request_id_is_generated_when_absent_or_unsafe(app_client):
    r = await app_client.get("/v1/health")
    assert r.headers["x-request-id"].startswith("req_")
    r = await app_client.get("/v1/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"].startswith("req_")


async def test_validation_errors_carry_field_details(app_client, scaikey):
    token = await client_token(scaikey, CI)
    r = await app_client.post("/v1/auth/tokens", json={"name": "", "scopes": "nope"}, headers=bearer(token))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    fields = {f["field"] for f in err["details"]["fields"]}
    assert {"name", "scopes"} <= fields
    r = await app_client.post("/v1/auth/tokens", content=b"{not json", headers={
        **bearer(token), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


async def test_unhandled_exception_is_a_500_envelope_with_request_id(settings, use_settings):
    from api.app import create_app

    use_settings(settings)
    app = create_app(settings)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret-value-must-not-leak")

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://t") as c:
            r = await c.get("/v1/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "boom-1"
    body = r.json()
    assert body["error"]["code"] == "internal_error" and body["error"]["request_id"] == "boom-1"
    assert "secret-value-must-not-leak" not in r.text


async def test_metrics_by_route_template_and_status(app_client):
    await app_client.get("/v1/health")
    await app_client.get("/v1/t/tnt_x/nothing-here")
    text = (await app_client.get("/metrics")).text
    assert 'scaivault_requests_total{method="GET",path_category="health",route="/v1/health",status="200"}' in text
    assert 'route="unmatched"' in text and 'status="404"' in text
    assert "scaivault_request_duration_seconds_bucket" in text
    assert (await app_client.get("/v1/metrics")).status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
async def test_openapi_is_served(app_client, path):
    assert (await app_client.get(path)).status_code == 200


async def test_access_log_line_carries_the_request_id(settings_factory, make_app_client, capsys):
    async with make_app_client(settings_factory(log_access=True)) as client:
        await client.get("/v1/health", headers={"X-Request-ID": "trace-log-1"})
    import json

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("msg") == "request"]
    assert any(e.get("request_id") == "trace-log-1" and e.get("route") == "/v1/health" and e.get("status") == 200
               for e in access), access
