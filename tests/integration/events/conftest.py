"""Fixtures for event tests: an API client with an admin token, a worker subprocess, a receiver, emit()."""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from repositories.events.outbox import emit as outbox_emit
from tests.helpers import ADMIN, TENANT, bearer, client_token, grant, reset_emulator
from tests.webhook_receiver import Receiver

FAST = {
    "webhook_allow_private": True,
    "webhook_retry_schedule": "300ms,300ms,300ms,300ms,300ms",
    "webhook_timeout_seconds": 3,
    "event_relay_sweep_seconds": 1,
    "event_relay_heartbeat_seconds": 5,
    "event_relay_run_seconds": 60,
    "subscription_poll_recheck_seconds": 1,
    # the tests poll delivery logs far faster than the documented 20/min webhook_operations default
    "rate_limit_overrides": "webhook_operations=100000,subscription_operations=100000,subscription_poll=100000",
}


@dataclass
class Stack:
    api: httpx.AsyncClient
    settings: Any
    admin: dict[str, str]
    scaikey: str

    async def emit(self, event_type: str = "secret.created", path: str | None = "apps/web/db",
                   data: dict[str, Any] | None = None, count: int = 1, tenant_id: str = TENANT) -> list[str]:
        """Commit ``count`` events to the outbox in one transaction (as a feature's change would)."""
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            async with conn.transaction():
                return [await outbox_emit(conn, event_type=event_type, tenant_id=tenant_id, partner_id="prt_acme",
                                          identity_id="user:alice@acme.example", path=path,
                                          data=data if data is not None else {"version": 1, "secret_type": "json"})
                        for _ in range(count)]
        finally:
            await conn.close()

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def create_webhook(self, url: str, secret: str, **extra: Any) -> dict[str, Any]:
        body = {"name": extra.pop("name", "hook"), "url": url, "secret": secret,
                "events": extra.pop("events", ["secret.*"]), **extra}
        r = await self.api.post("/v1/webhooks", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def event_settings(settings_factory: Callable[..., Any]) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return settings_factory(**{**FAST, **overrides})

    return make


@pytest.fixture
async def stack_factory(scaikey: str, make_app_client: Any, redis_clean: str,
                        event_settings: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    await reset_emulator(scaikey)
    opened: list[Any] = []

    async def make(**overrides: Any) -> Stack:
        settings = event_settings(**overrides)
        cm = make_app_client(settings)
        api = await cm.__aenter__()
        opened.append(cm)
        admin = bearer(await client_token(scaikey, ADMIN))
        # Policies deny by default; subscription polls drop events on paths the owner may not read.
        await grant(api, admin, ["sa:dev-admin", "sa:ci-deployer", "user:alice@acme.example"],
                    permissions=("read", "list"), name="events-tests-read")
        return Stack(api=api, settings=settings, admin=admin, scaikey=scaikey)

    yield make
    for cm in reversed(opened):
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def stack(stack_factory: Callable[..., Any]) -> Stack:
    return await stack_factory()  # type: ignore[no-any-return]


@pytest.fixture
def hook_secret() -> str:
    return pysecrets.token_urlsafe(32)


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(secrets: list[str], **kw: Any) -> Receiver:
        r = Receiver(secrets, **kw).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
