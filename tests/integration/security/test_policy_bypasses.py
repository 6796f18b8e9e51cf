"""Issue 11, policy bypasses and batch auditing (items 5, 6, 7, 14), through the HTTP API.

5. batch metadata with ``expand_wildcards`` drops expanded paths the caller may not ``list``, silently;
6. webhook-delivered subscriptions (and ``policy.violation`` events) follow the owner's live path permissions,
   at fan-out and again at delivery;
7. partner-scope bindings belong to one tenant: a same-named group of another tenant matches nothing;
14. batch reads and batch metadata audit every denied or missing path as its own ``success: false`` entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN, PARTNER_ADMIN, bearer, client_token, grant, reset_emulator, user_token

pytestmark = pytest.mark.asyncio

PROD, DEV = "tnt_acme_prod", "tnt_acme_dev"
SECRETS = "secrets:read secrets:list secrets:write"


class Stack:
    def __init__(self, client: httpx.AsyncClient, settings: Any, scaikey: str) -> None:
        self.client, self.settings, self.scaikey = client, settings, scaikey

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def user(self, email: str, scope: str = SECRETS, **extra: Any) -> dict[str, str]:
        return bearer(await user_token(self.scaikey, email, scope=scope, client_id="vault-ui", **extra))

    async def admin(self) -> dict[str, str]:
        return bearer(await client_token(self.scaikey, ADMIN))

    async def partner(self) -> dict[str, str]:
        return bearer(await client_token(self.scaikey, PARTNER_ADMIN))


@pytest.fixture
async def stack(scaikey: str, settings_factory: Any, make_app_client: Any, redis_clean: str) -> AsyncIterator[Stack]:
    await reset_emulator(scaikey)
    settings = settings_factory()
    async with make_app_client(settings) as client:
        yield Stack(client, settings, scaikey)


# ------------------------------------------------------------------------------------------------ item 7


async def test_partner_binding_does_not_match_a_same_named_group_of_another_tenant(stack: Stack) -> None:
    api = stack.client
    partner = await stack.partner()  # partner admin of prt_acme, acting in its home tenant tnt_acme_prod
    # the tenant admin of tnt_acme_dev created a group "developers" in its own ScaiKey tenant and joined erin
    erin = await stack.user("erin@acme.example", claims={"groups": ["developers"]})
    assert (await api.get("/v1/auth/whoami", headers=erin)).json()["tenant_id"] == DEV
    alice = await stack.user("alice@acme.example")  # tnt_acme_prod, member of prod's "developers"

    await grant(api, partner, ["sa:partner-admin-svc"], pattern="shared/**", scope="partner", name="pa-writes")
    pid = await grant(api, partner, ["group:developers"], pattern="shared/**", permissions=("read", "list"),
                      scope="partner", name="partner-developers")  # meant for tnt_acme_prod's developers
    r = await api.put("/v1/partner/secrets/shared/ca", json={"data": {"pem": "partner-only"}}, headers=partner)
    assert r.status_code == 201, r.text

    r = await api.get("/v1/partner/secrets/shared/ca", headers=alice)
    assert r.status_code == 200 and r.json()["data"] == {"pem": "partner-only"}
    r = await api.get("/v1/partner/secrets/shared/ca", headers=erin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    assert "partner-only" not in r.text
    # nor does the partner policy grant erin anything on her own tenant's paths
    r = await api.get("/v1/secrets/shared/ca", headers=erin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    r = await api.post("/v1/policies/test", headers={**partner, "X-Tenant-ID": DEV},
                       json={"identity_id": "user:erin@acme.example", "groups": ["developers"],
                             "path": "shared/ca", "permission": "read", "scope": "partner"})
    assert r.status_code == 200 and r.json()["allowed"] is False, r.text

    # the partner admin grants dev's own "developers" group explicitly, acting in tnt_acme_dev
    in_dev = {**partner, "X-Tenant-ID": DEV}
    r = await api.post(f"/v1/policies/{pid}/bindings", headers=in_dev,
                       json={"identity_type": "group", "identity_id": "group:developers"})
    assert r.status_code == 201, r.text  # the same identity id in another tenant is another binding
    dev_binding = r.json()
    assert dev_binding["tenant_id"] == DEV
    assert (await api.get("/v1/partner/secrets/shared/ca", headers=erin)).status_code == 200

    # each tenant sees (and may delete) only its own bindings of the shared policy
    seen_dev = (await api.get(f"/v1/policies/{pid}/bindings", headers=in_dev)).json()["bindings"]
    assert [(b["id"], b["tenant_id"]) for b in seen_dev] == [(dev_binding["id"], DEV)]
    seen_prod = (await api.get(f"/v1/policies/{pid}", headers=partner)).json()["bindings"]
    assert [b["tenant_id"] for b in seen_prod] == [PROD]
    listed = (await api.get("/v1/policies?scope=partner", headers=await stack.admin())).json()["policies"]
    assert {p["name"]: p["binding_count"] for p in listed}["partner-developers"] == 1
    r = await api.delete(f"/v1/policies/{pid}/bindings/{dev_binding['id']}", headers=partner)
    assert r.status_code == 404 and r.json()["error"]["code"] == "binding_not_found"
    r = await api.delete(f"/v1/policies/{pid}/bindings/{dev_binding['id']}", headers=in_dev)
    assert r.status_code == 204
    r = await api.get("/v1/partner/secrets/shared/ca", headers=erin)
    assert r.status_code == 403
