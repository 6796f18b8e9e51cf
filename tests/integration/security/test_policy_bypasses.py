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
from tests.integration.events.conftest import FAST
from tests.webhook_receiver import Receiver, wait_for

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
    settings = settings_factory(**FAST)  # FAST: webhooks to loopback, quick retries, generous rate limits
    async with make_app_client(settings) as client:
        yield Stack(client, settings, scaikey)


@pytest.fixture
def receivers() -> Any:
    started: list[Receiver] = []

    def make(secret: str, **kw: Any) -> Receiver:
        rx = Receiver([secret], **kw).start()
        started.append(rx)
        return rx

    yield make
    for rx in started:
        rx.stop()


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


# ------------------------------------------------------------------------------------------------ item 6

HOOK_SECRET = "whsec-" + "k" * 40
SUBS = "subscriptions:read subscriptions:write secrets:read"


async def _webhook_subscription(stack: Stack, headers: dict[str, str], url: str, paths: list[str],
                                events: list[str]) -> dict[str, Any]:
    r = await stack.client.post("/v1/subscriptions", headers=headers, json={
        "name": "feed", "paths": paths, "events": events,
        "delivery": {"type": "webhook", "url": url, "secret": HOOK_SECRET}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _delivered_paths(stack: Stack, sub: dict[str, Any]) -> list[str]:
    rows = await stack.sql(
        "SELECT e.path FROM webhook_deliveries d JOIN subscriptions s ON s.webhook_id = d.webhook_id"
        " JOIN events e ON e.event_id = d.event_id WHERE s.id = $1 ORDER BY e.path", sub["id"])
    return [r["path"] for r in rows]


async def test_webhook_subscriptions_and_violation_events_follow_the_owners_path_policies(
        stack: Stack, receivers: Any, worker_process: Any) -> None:
    admin = await stack.admin()
    await grant(stack.client, admin, ["sa:dev-admin"], name="admin-all")
    await grant(stack.client, admin, ["user:alice@acme.example"], pattern="prod/**", permissions=("read", "list"),
                name="alice-prod")
    await grant(stack.client, admin, ["user:bob@acme.example"], pattern="bob/**", permissions=("list",),
                name="bob-list-only")
    alice, bob = await stack.user("alice@acme.example", SUBS), await stack.user("bob@acme.example", SUBS)
    rx_alice, rx_bob = receivers(HOOK_SECRET), receivers(HOOK_SECRET)
    events = ["secret.*", "policy.violation"]
    sub_alice = await _webhook_subscription(stack, alice, rx_alice.url, ["**"], events)
    sub_bob = await _webhook_subscription(stack, bob, rx_bob.url, ["**"], events)
    worker_process(stack.settings)

    for path in ("prod/db", "bob/db"):
        await _put(stack, admin, path)
    carol = await stack.user("carol@acme.example", "secrets:read")  # no grant at all: two denials
    for path in ("prod/payroll", "bob/payroll"):
        assert (await stack.client.get(f"/v1/secrets/{path}", headers=carol)).status_code == 403

    def got(rx: Receiver) -> set[tuple[str, str]]:
        return {(x.event["event_type"], x.event["path"]) for x in rx.successes()}

    mine = {("secret.created", "bob/db"), ("policy.violation", "bob/payroll")}  # bob holds list on bob/**
    await wait_for(lambda: got(rx_bob) >= mine, what="bob's own events")
    await wait_for(lambda: got(rx_alice) >= {("secret.created", "prod/db"), ("policy.violation", "prod/payroll")},
                   what="alice's events")
    # Every event above was fanned out once alice and bob received theirs: nothing else was planned for bob.
    assert await _delivered_paths(stack, sub_bob) == ["bob/db", "bob/payroll"]
    assert got(rx_bob) == mine
    assert all(x.event["path"].startswith("bob/") for x in rx_bob.snapshot())  # no attempt of any other
    assert set(await _delivered_paths(stack, sub_alice)) == {"prod/db", "prod/payroll"}


class _RecordingTemporal:
    """Stands in for the Temporal client during one fan-out: records which deliveries would start."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, str]] = []

    async def start_workflow(self, _workflow: Any, inp: Any, **_kw: Any) -> None:
        self.started.append((inp.tenant_id, inp.webhook_id, inp.event_id))


async def test_delivery_rechecks_the_owners_permission_before_each_attempt(
        stack: Stack, receivers: Any, worker_process: Any) -> None:
    import redis.asyncio as aioredis

    from db.engine import Database
    from services.events.relay import EventRelay
    from worker.client import connect

    admin = await stack.admin()
    await grant(stack.client, admin, ["sa:dev-admin"], name="admin-all")
    pid = await grant(stack.client, admin, ["user:dave@acme.example"], pattern="prod/**", permissions=("read",),
                      name="dave-prod")
    dave = await stack.user("dave@acme.example", SUBS)
    rx = receivers(HOOK_SECRET)
    sub = await _webhook_subscription(stack, dave, rx.url, ["prod/**"], ["secret.*"])
    await _put(stack, admin, "prod/db")

    # fan-out while dave may still read prod/**: the delivery is planned
    db = Database(stack.settings, pool_size=2)
    redis = aioredis.Redis.from_url(stack.settings.redis_url)
    try:
        recording = _RecordingTemporal()
        await EventRelay(stack.settings, db, recording, redis).drain()
        assert await _delivered_paths(stack, sub) == ["prod/db"]
        planned = recording.started
        assert len(planned) == 1

        # the grant goes before the first attempt
        [binding] = (await stack.client.get(f"/v1/policies/{pid}/bindings", headers=admin)).json()["bindings"]
        r = await stack.client.delete(f"/v1/policies/{pid}/bindings/{binding['id']}", headers=admin)
        assert r.status_code == 204

        worker_process(stack.settings)
        client = await connect(stack.settings)
        await EventRelay(stack.settings, db, client, redis, eager_start=False).start_deliveries(planned)
        rows = await wait_for(lambda: _settled(stack, sub), what="the delivery to settle")
    finally:
        await redis.aclose()
        await db.dispose()
    assert rows[0]["status"] == "failed" and rows[0]["error"].startswith("withheld"), rows
    assert rows[0]["attempts"] == 0
    assert rx.snapshot() == []
    audit = await stack.sql("SELECT success, error_code, extra_data FROM audit_log WHERE action = 'webhook_delivery'")
    assert [(a["success"], a["error_code"]) for a in audit] == [(False, "access_denied")]
    assert orjson.loads(audit[0]["extra_data"])["outcome"] == "withheld"


async def _settled(stack: Stack, sub: dict[str, Any]) -> list[asyncpg.Record] | None:
    rows = await stack.sql(
        "SELECT d.status, d.error, d.attempts FROM webhook_deliveries d JOIN subscriptions s"
        " ON s.webhook_id = d.webhook_id WHERE s.id = $1", sub["id"])
    return rows if rows and all(r["status"] != "pending" for r in rows) else None


async def test_webhook_owner_is_resolved_live_from_the_identity_cache(
        stack: Stack, receivers: Any, worker_process: Any) -> None:
    """A grant through a group the identity cache holds counts at fan-out; a user the cache reports suspended
    receives nothing, whatever its grants."""
    admin = await stack.admin()
    await grant(stack.client, admin, ["sa:dev-admin"], name="admin-all")
    await grant(stack.client, admin, ["group:auditors"], pattern="prod/**", permissions=("list",), name="auditors")
    await grant(stack.client, admin, ["user:alice@acme.example"], pattern="prod/**", permissions=("read",),
                name="alice-prod")
    await stack.sql("INSERT INTO identity_users (tenant_id, id, email) VALUES ($1, 'usr_bob', 'bob@acme.example')",
                    PROD)
    await stack.sql("INSERT INTO identity_groups (tenant_id, id, name) VALUES ($1, 'grp_auditors', 'auditors')", PROD)
    await stack.sql("INSERT INTO identity_memberships (tenant_id, group_id, member_type, member_id)"
                    " VALUES ($1, 'grp_auditors', 'user', 'usr_bob')", PROD)
    bob = await stack.user("bob@acme.example", SUBS)
    alice = await stack.user("alice@acme.example", SUBS)
    rx_bob, rx_alice = receivers(HOOK_SECRET), receivers(HOOK_SECRET)
    sub_bob = await _webhook_subscription(stack, bob, rx_bob.url, ["prod/**"], ["secret.*"])
    await _webhook_subscription(stack, alice, rx_alice.url, ["prod/**"], ["secret.*"])  # the barrier
    worker_process(stack.settings)

    await _put(stack, admin, "prod/a")
    await wait_for(lambda: [x.event["path"] for x in rx_bob.successes()] == ["prod/a"], what="bob's event")

    await stack.sql("UPDATE identity_users SET status = 'SUSPENDED' WHERE tenant_id = $1 AND id = 'usr_bob'", PROD)
    await _put(stack, admin, "prod/b")
    await wait_for(lambda: "prod/b" in {x.event["path"] for x in rx_alice.successes()}, what="alice's event")
    assert await _delivered_paths(stack, sub_bob) == ["prod/a"]
