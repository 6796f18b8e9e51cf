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
import orjson
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


# ------------------------------------------------------------------------------------------- items 5 and 14


async def _batch_fixture(stack: Stack) -> tuple[dict[str, str], dict[str, str]]:
    """sa:dev-admin may do anything; alice may read and list under w/app/ only."""
    admin = await stack.admin()
    await grant(stack.client, admin, ["sa:dev-admin"], name="admin-all")
    await grant(stack.client, admin, ["user:alice@acme.example"], pattern="w/app/**", permissions=("read", "list"),
                name="alice-app")
    return admin, await stack.user("alice@acme.example")


async def _put(stack: Stack, headers: dict[str, str], path: str) -> None:
    r = await stack.client.put(f"/v1/secrets/{path}", json={"data": {"v": "value-of-" + path}}, headers=headers)
    assert r.status_code == 201, r.text


async def _audit_rows(stack: Stack, r: httpx.Response) -> list[asyncpg.Record]:
    return await stack.sql("SELECT action, secret_path, permission, success, error_code, extra_data FROM audit_log"
                           " WHERE request_id = $1 ORDER BY seq", r.headers["x-request-id"])


async def test_expanded_paths_the_caller_may_not_list_are_dropped_silently(stack: Stack) -> None:
    admin, alice = await _batch_fixture(stack)
    await _put(stack, admin, "w/app/db")
    body = {"paths": ["w/*/db", "w/other/**", "w/**", "w/app/**"], "options": {"expand_wildcards": True}}
    before = await stack.client.post("/v1/secrets/batch/metadata", json=body, headers=alice)
    assert before.status_code == 200, before.text
    assert sorted(before.json()["secrets"]) == ["w/app/db"] and before.json()["errors"] == {}

    for path in ("w/other/db", "w/other/payroll-2027", "w/app-legacy/db"):  # alice may not list these
        await _put(stack, admin, path)
    after = await stack.client.post("/v1/secrets/batch/metadata", json=body, headers=alice)
    assert after.status_code == 200, after.text
    assert after.json() == before.json()  # the same answer as when those paths did not exist
    assert "other" not in after.text and "legacy" not in after.text
    listed = (await stack.client.get("/v1/secrets?prefix=w/", headers=alice)).json()["secrets"]
    assert [s["path"] for s in listed] == list(after.json()["secrets"])  # exactly what a listing shows

    # a path the caller names itself is answered as before: denied whether or not it exists
    r = await stack.client.post("/v1/secrets/batch/metadata", headers=alice,
                                json={"paths": ["w/other/db", "w/other/nothing-here"],
                                      "options": {"expand_wildcards": True}})
    assert {p: e["code"] for p, e in r.json()["errors"].items()} == {"w/other/db": "access_denied",
                                                                    "w/other/nothing-here": "access_denied"}


async def test_batch_read_audits_every_failed_path(stack: Stack) -> None:
    admin, alice = await _batch_fixture(stack)
    for path in ("w/app/db", "w/other/db"):
        await _put(stack, admin, path)

    # everything fails: one failed entry per path, and no successful read
    r = await stack.client.post("/v1/secrets/batch", json={"paths": ["w/other/db", "w/app/missing", "Bad/Path"]},
                                headers=alice)
    assert r.status_code == 200 and r.json()["secrets"] == {}, r.text
    rows = await _audit_rows(stack, r)
    assert sorted((x["action"], x["secret_path"] or "", x["success"], x["error_code"]) for x in rows) == [
        ("read", "", False, "invalid_path"),  # an invalid path is never written to the log
        ("read", "w/app/missing", False, "secret_not_found"),
        ("read", "w/other/db", False, "access_denied"),
    ]

    # partial success: one entry per path, each with its own outcome
    r = await stack.client.post("/v1/secrets/batch", json={"paths": ["w/app/db", "w/other/db"]}, headers=alice)
    assert list(r.json()["secrets"]) == ["w/app/db"]
    rows = await _audit_rows(stack, r)
    assert sorted((x["secret_path"], x["success"], x["error_code"]) for x in rows) == [
        ("w/app/db", True, None), ("w/other/db", False, "access_denied")]
    assert all(x["permission"] == "read" for x in rows)

    # fail_fast: the failing path is named in the failed entry
    r = await stack.client.post("/v1/secrets/batch", json={"paths": ["w/other/db"], "options": {"fail_fast": True}},
                                headers=alice)
    assert r.status_code == 403
    rows = await _audit_rows(stack, r)
    assert [(x["secret_path"], x["success"], x["error_code"]) for x in rows] == [("w/other/db", False, "access_denied")]


async def test_batch_metadata_audits_every_failed_path(stack: Stack) -> None:
    admin, alice = await _batch_fixture(stack)
    await _put(stack, admin, "w/app/db")
    await _put(stack, admin, "w/other/db")

    r = await stack.client.post("/v1/secrets/batch/metadata", json={"paths": ["w/other/db", "w/app/nope"]},
                                headers=alice)
    assert r.status_code == 200 and r.json()["secrets"] == {}
    rows = await _audit_rows(stack, r)
    assert sorted((x["action"], x["secret_path"], x["success"], x["error_code"]) for x in rows) == [
        ("list", "w/app/nope", False, "secret_not_found"), ("list", "w/other/db", False, "access_denied")]

    r = await stack.client.post("/v1/secrets/batch/metadata", json={"paths": ["w/app/db", "w/other/db"]},
                                headers=alice)
    rows = await _audit_rows(stack, r)
    assert sorted((x["secret_path"] or "", x["success"], x["error_code"]) for x in rows) == [
        ("", True, None), ("w/other/db", False, "access_denied")]
    summary = next(x for x in rows if x["success"])
    assert orjson.loads(summary["extra_data"])["count"] == 1
