"""Fixtures for the access-policy API tests: the real app plus a test-only route that runs the access check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from api.context import RequestContext
from api.deps import app_state, authorized
from tests.helpers import ADMIN, bearer, client_token, reset_emulator

PROBE = "/v1/_probe"


def add_probe(app: FastAPI) -> None:
    """GET /v1/_probe/{permission}/{path}: 200 if state.get("access").check passes, else its error."""

    async def probe(permission: str, path: str, request: Request,
                    ctx: Annotated[RequestContext, Depends(authorized(None))]) -> dict[str, Any]:
        scope = request.query_params.get("scope", "tenant")
        await app_state(request).get("access").check(ctx, path, permission, scope=scope)
        return {"ok": True, "identity_ids": list(ctx.principal.identity_ids)}

    app.add_api_route(PROBE + "/{permission}/{path:path}", probe, methods=["GET"])


@pytest.fixture
def make_api(use_settings: Callable[[Any], Any]) -> Callable[[Any], AbstractAsyncContextManager[httpx.AsyncClient]]:
    @asynccontextmanager
    async def make(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        from api.app import create_app

        use_settings(settings)
        app = create_app(settings)
        add_probe(app)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                client.app = app  # type: ignore[attr-defined]
                yield client

    return make


@pytest.fixture
async def api(scaikey: str, settings_factory: Callable[..., Any], make_api: Any,
              redis_clean: str) -> AsyncIterator[httpx.AsyncClient]:
    await reset_emulator(scaikey)
    async with make_api(settings_factory(jwks_min_refresh_interval_seconds=1)) as client:
        yield client


@pytest.fixture
async def admin(scaikey: str) -> dict[str, str]:
    """Headers of the seeded tenant-admin service account (scope admin, tenant tnt_acme_prod)."""
    return bearer(await client_token(scaikey, ADMIN))
