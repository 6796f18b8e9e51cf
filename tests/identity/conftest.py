"""Fixtures for the identity-sync suite: a reset emulator, the app (in-process or on a real port) and an
in-process Temporal worker serving the identity task queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack import services as svc
from tests.helpers import ADMIN, bearer, client_token

WEBHOOK_SECRET = "whsec_identity_tests_0123456789abcdef"


@dataclass
class Emu:
    """The ScaiKey emulator over HTTP (control plane + admin API with a platform admin:write token)."""

    url: str
    client_secret: str

    async def control(self, method: str, path: str, **kw: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as c:
            r = await c.request(method, f"/_emulator{path}", **kw)
        assert r.status_code < 300, r.text
        return r.json()

    async def admin_token(self) -> str:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{self.url}/api/v1/platform/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("scaivault", self.client_secret))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        token = await self.admin_token()
        async with httpx.AsyncClient(base_url=self.url) as c:
            r = await c.request(method, path, headers=bearer(token), **kw)
        assert r.status_code < 300, r.text
        return r

    async def page_size(self, n: int) -> None:
        await self.control("POST", "/settings", json={"default_page_size": n})

    async def requests(self, pattern: str) -> list[dict[str, Any]]:
        return list((await self.control("GET", "/log", params={"path": pattern}))["items"])


@pytest.fixture
async def emu(scaikey: str, scaikey_client_secret: str) -> Emu:
    e = Emu(scaikey, scaikey_client_secret)
    await e.control("POST", "/reset")
    return e


@dataclass
class Stack:
    settings: Any
    api: httpx.AsyncClient  # in-process, or over HTTP when started with live=True
    url: str | None
    temporal: Any

    async def token(self, creds: tuple[str, str] = ADMIN) -> dict[str, str]:
        return bearer(await client_token(self.settings.scaikey_base_url, creds))

    async def sync(self, headers: dict[str, str], **params: str) -> dict[str, Any]:
        r = await self.api.post("/v1/identity/sync", params=params, headers=headers)
        assert r.status_code == 202, r.text
        return dict(r.json())

    async def wait_sync(self, sync_id: str, headers: dict[str, str], timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.api.get(f"/v1/identity/sync/{sync_id}", headers=headers)
            assert r.status_code == 200, r.text
            body = dict(r.json())
            if body["status"] in ("succeeded", "failed", "skipped"):
                return body
            assert time.monotonic() < deadline, f"sync {sync_id} still {body['status']}: {body}"
            await asyncio.sleep(0.2)

    async def sync_and_wait(self, headers: dict[str, str], **params: str) -> dict[str, Any]:
        return await self.wait_sync((await self.sync(headers, **params))["sync_id"], headers)


DEFAULTS: dict[str, Any] = {
    "identity_sync_heartbeat_seconds": 5,
    "identity_sync_retry_attempts": 2,
    "scaikey_page_size": 0,  # follow the emulator's default page size (set to 2 by tests)
    "scaikey_webhook_secret": WEBHOOK_SECRET,
    "jwks_min_refresh_interval_seconds": 1,
    "identity_cache_ttl_seconds": 30,
}


@asynccontextmanager
async def identity_worker(settings: Any) -> AsyncIterator[Any]:
    """An in-process temporalio Worker for the identity queue (same registration as ``scaivault worker``)."""
    import redis.asyncio as aioredis
    from temporalio.worker import Worker

    from db.engine import Database
    from worker.client import connect
    from worker.registry import IDENTITY, REGISTRATIONS, WorkerDeps

    client = await connect(settings)
    db = Database(settings, pool_size=4, application_name="identity-test-worker")
    redis = aioredis.Redis.from_url(settings.redis_url)
    deps = WorkerDeps(settings=settings, db=db, redis=redis, temporal=client)
    reg = next(r for r in REGISTRATIONS if r.concern == IDENTITY)
    acts = reg.activities(deps)
    try:
        async with Worker(client, task_queue=settings.task_queue(IDENTITY), workflows=reg.workflows(),
                          activities=acts):
            yield client
    finally:
        owner = getattr(acts[0], "__self__", None)
        if owner is not None:
            await owner.clients.aclose()
        await redis.aclose()
        await db.dispose()


@pytest.fixture
def identity_stack(
    emu: Emu, settings_factory: Callable[..., Any], use_settings: Callable[[Any], Any], redis_clean: str,
) -> Callable[..., AbstractAsyncContextManager[Stack]]:
    """``async with identity_stack(worker=True, live=False, **overrides) as stack``."""

    @asynccontextmanager
    async def make(*, worker: bool = True, live: bool = False, **overrides: Any) -> AsyncIterator[Stack]:
        import uvicorn

        from api.app import create_app

        settings = settings_factory(**{**DEFAULTS, **overrides})
        use_settings(settings)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            temporal = app.state.sv.temporal
            async with _maybe_worker(settings, worker):
                if not live:
                    transport = httpx.ASGITransport(app=app)
                    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                        yield Stack(settings, c, None, temporal)
                    return
                port = svc.free_port()
                server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                                       log_level="warning", access_log=False))
                task = asyncio.create_task(server.serve())
                while not server.started:
                    await asyncio.sleep(0.02)
                url = f"http://127.0.0.1:{port}"
                try:
                    async with httpx.AsyncClient(base_url=url) as c:
                        yield Stack(settings, c, url, temporal)
                finally:
                    server.should_exit = True
                    await task

    return make


@asynccontextmanager
async def _maybe_worker(settings: Any, enabled: bool) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    async with identity_worker(settings):
        yield
