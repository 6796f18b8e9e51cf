"""Fixtures for rotation tests: an API client with an admin token (granted everything on ``**``), SQL access,
helpers to create policies and secrets; the events FAST settings so outbox events reach webhook receivers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN, bearer, client_token, grant, reset_emulator
from tests.integration.events.conftest import FAST, hook_secret, receiver_factory  # noqa: F401 (fixtures)


@dataclass
class Stack:
    api: httpx.AsyncClient
    settings: Any
    admin: dict[str, str]
    scaikey: str

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def policy(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", f"pol-{uuid.uuid4().hex[:12]}")
        body.setdefault("interval", "90d")
        r = await self.api.post("/v1/rotation/policies", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def put(self, path: str, data: dict[str, Any], **options: Any) -> httpx.Response:
        body: dict[str, Any] = {"data": data}
        if options:
            body["options"] = options
        return await self.api.put(f"/v1/secrets/{path}", json=body, headers=self.admin)

    async def versions(self, path: str) -> list[int]:
        r = await self.api.get(f"/v1/secrets/{path}:versions", headers=self.admin)
        assert r.status_code == 200, r.text
        return [v["version"] for v in r.json()["versions"]]

    async def events(self, *types: str, path: str | None = None) -> list[dict[str, Any]]:
        rows = await self.sql("SELECT event_type, path, identity_id, data::text AS data FROM events"
                              " WHERE event_type = ANY($1) AND ($2::text IS NULL OR path = $2) ORDER BY seq",
                              list(types), path)
        import orjson

        return [{"event_type": r["event_type"], "path": r["path"], "identity_id": r["identity_id"],
                 "data": orjson.loads(r["data"])} for r in rows]


@pytest.fixture
async def stack_factory(scaikey: str, make_app_client: Any, redis_clean: str,
                        settings_factory: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    await reset_emulator(scaikey)
    opened: list[Any] = []

    async def make(**overrides: Any) -> Stack:
        settings = settings_factory(**{**FAST, **overrides})
        cm = make_app_client(settings)
        api = await cm.__aenter__()
        opened.append(cm)
        admin = bearer(await client_token(scaikey, ADMIN))
        await grant(api, admin, ["sa:dev-admin"], name="rotation-tests-all")
        return Stack(api=api, settings=settings, admin=admin, scaikey=scaikey)

    yield make
    for cm in reversed(opened):
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def stack(stack_factory: Callable[..., Any]) -> Stack:
    return await stack_factory()  # type: ignore[no-any-return]
