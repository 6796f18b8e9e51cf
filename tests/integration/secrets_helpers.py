"""Shared fixtures/helpers for the secrets API tests (real PostgreSQL, Redis, ScaiKey emulator)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN, PARTNER_ADMIN, bearer, client_token, grant, reset_emulator, user_token

ALL_SCOPES = "secrets:read secrets:write secrets:list secrets:delete"
PROD_USER = "alice@acme.example"   # tnt_acme_prod
DEV_USER = "erin@acme.example"     # tnt_acme_dev (same partner prt_acme)


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Any
    scaikey: str
    app: Any

    async def token(self, email: str = PROD_USER, scope: str = ALL_SCOPES, **extra: Any) -> dict[str, str]:
        return bearer(await user_token(self.scaikey, email, scope=scope, client_id="vault-ui", **extra))

    async def partner_admin(self) -> dict[str, str]:
        return bearer(await client_token(self.scaikey, PARTNER_ADMIN))

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.asyncpg_dsn)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await self.db()
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def put(self, path: str, data: Any, headers: dict[str, str], **body: Any) -> httpx.Response:
        return await self.client.put(f"/v1/secrets/{path}", json={"data": data, **body}, headers=headers)

    def component(self, name: str) -> Any:
        return self.app.state.sv.components[name]


@pytest.fixture
async def api(scaikey: str, settings_factory: Any, make_app_client: Any, redis_clean: str) -> AsyncIterator[Api]:
    await reset_emulator(scaikey)
    settings = settings_factory()
    async with make_app_client(settings) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        api = Api(client, settings, scaikey, app)
        await grant_test_identities(api)
        yield api


PROD_IDENTITIES = [f"user:{PROD_USER}", "user:bob@acme.example", "sa:ci-deployer", "sa:dev-admin",
                   "sa:partner-admin-svc"]
DEV_IDENTITIES = [f"user:{DEV_USER}", "sa:partner-admin-svc"]


async def grant_test_identities(api: Api) -> None:
    """Policies deny by default: bind full access for the identities these tests act as, in both tenants,
    plus a partner-scope policy so tenants may read partner secrets."""
    admin = bearer(await client_token(api.scaikey, ADMIN))
    await grant(api.client, admin, PROD_IDENTITIES, name="secrets-tests")
    await api.client.get("/v1/auth/whoami", headers=await api.token(DEV_USER))  # records tnt_acme_dev
    partner = await api.partner_admin()
    await grant(api.client, partner, DEV_IDENTITIES, tenant="tnt_acme_dev", name="secrets-tests")
    # bindings belong to the tenant they are made in: one partner-scope policy bound in each tenant
    await grant(api.client, partner, PROD_IDENTITIES, scope="partner", name="partner-secrets-tests")
    await grant(api.client, partner, DEV_IDENTITIES, scope="partner", tenant="tnt_acme_dev",
                name="partner-secrets-tests-dev")
