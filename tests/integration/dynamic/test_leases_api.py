"""Credentials and leases through HTTP against the real PostgreSQL target: the issued credential logs in with
the issued password, the lease keeps no password, renew is bounded by max_ttl, explicit revoke drops the role
(confirmed before ``revoked``), revoke of a down target answers 202 and keeps the lease, bad input leaves no
role behind, and another tenant's lease id is lease_not_found."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.helpers import OTHER_TENANT, PARTNER_ADMIN, bearer, client_token, user_token

pytestmark = pytest.mark.asyncio


async def test_issue_login_renew_revoke(stack) -> None:
    eng = await stack.engine(max_ttl="2h")
    await stack.role(eng["name"], max_ttl="1h", default_ttl="10m")
    r = await stack.creds(eng["name"])
    assert r.status_code == 200, r.text
    lease = r.json()
    user, pw = lease["data"]["username"], lease["data"]["password"]
    assert lease["ttl_seconds"] == 600 and lease["renewable"] and lease["status"] == "active"
    assert await stack.target.can_login(user, pw)
    assert await stack.target.password_matches(user, pw)
    assert not await stack.target.password_matches(user, pw + "x")
    # stored: the username only; never the password (lease row, audit, events)
    for table in ("dynamic_leases", "audit_log", "events"):
        dump = orjson.dumps([dict(x) for x in await stack.sql(f"SELECT * FROM {table}")], default=str).decode()
        assert pw not in dump, table
    got = await stack.lease(lease["lease_id"])
    assert "data" not in got and got["username"] == user
    # renew within max_ttl, then beyond it
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/renew", headers=stack.admin,
                             json={"increment": "30m"})
    assert r.status_code == 200, r.text
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/renew", headers=stack.admin,
                             json={"increment": "2h"})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "increment", r.text
    # a TTL above the role's max_ttl is refused and creates nothing
    before = await stack.target.generated_roles()
    r = await stack.creds(eng["name"], ttl="90m")
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "ttl"
    assert await stack.target.generated_roles() == before
    # revoke: the role is gone at the target before the lease says revoked
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
    assert not await stack.target.role_exists(user)
    assert not await stack.target.can_login(user, pw)
    assert [a["success"] for a in await stack.audit("dynamic_generate")] == [True, False]  # the refused ttl
    assert [a["success"] for a in await stack.audit("dynamic_renew")] == [True, False]
    revokes = await stack.audit("dynamic_revoke")
    assert "system:lease-revoker" in [a["identity_id"] for a in revokes]
    types = [e["event_type"] for e in await stack.events("lease.created", "lease.renewed", "lease.revoked")]
    assert types == ["lease.created", "lease.renewed", "lease.revoked"]
    m = (await stack.api.get("/v1/metrics")).text
    assert f'scaivault_leases_generated_total{{engine="{eng["name"]}",role="readonly"}} 1.0' in m
    assert f'scaivault_leases_active{{engine="{eng["name"]}"}} 0.0' in m


async def test_bad_statements_leave_no_role_and_no_lease(stack) -> None:
    eng = await stack.engine()
    await stack.role(eng["name"], "broken", creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'", "GRANT SELECT ON no_such_table TO \"{{name}}\""])
    r = await stack.creds(eng["name"], "broken")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", r.text
    assert "no_such_table" in r.json()["error"]["message"]
    assert await stack.target.generated_roles() == []
    assert await stack.sql("SELECT id FROM dynamic_leases") == []
    r = await stack.creds(eng["name"], "nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "role_not_found"
    r = await stack.creds("nope", "broken")
    assert r.status_code == 404 and r.json()["error"]["code"] == "engine_not_found"


async def test_revoke_against_a_down_target_is_queued_then_retried(stack) -> None:
    eng = await stack.engine()
    await stack.role(eng["name"])
    lease = (await stack.creds(eng["name"])).json()
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" NOLOGIN')  # the target refuses the root
    await stack.sql("UPDATE dynamic_engines SET updated_at = now()")  # drop the cached pool
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "revoking" and "not permitted to log in" in body["last_error"]
    assert await stack.target.role_exists(lease["data"]["username"])
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" LOGIN')
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
    assert not await stack.target.role_exists(lease["data"]["username"])


async def test_engine_delete_refused_with_live_leases_unless_revoked(stack) -> None:
    eng = await stack.engine()
    await stack.role(eng["name"])
    users = [(await stack.creds(eng["name"])).json()["data"]["username"] for _ in range(3)]
    r = await stack.api.delete(f"/v1/dynamic/engines/{eng['name']}", headers=stack.admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "engine_in_use"
    r = await stack.api.delete(f"/v1/dynamic/engines/{eng['name']}?revoke_leases=true", headers=stack.admin)
    assert r.status_code == 204, r.text
    assert [u for u in users if await stack.target.role_exists(u)] == []


async def test_cross_tenant_probes_answer_not_found(stack) -> None:
    """Tenant B (the partner admin through /v1/t/tnt_acme_dev) names tenant A's engine, role and lease: every
    route answers exactly as for a missing one, and nothing of A changes (its role still exists)."""
    eng = await stack.engine("shared-name")
    await stack.role(eng["name"])
    lease = (await stack.creds(eng["name"])).json()
    erin = bearer(await user_token(stack.scaikey, "erin@acme.example", scope="secrets:read"))
    assert (await stack.api.get("/v1/auth/whoami", headers=erin)).status_code == 200  # tenant B is recorded
    partner = bearer(await client_token(stack.scaikey, PARTNER_ADMIN))
    b = f"/v1/t/{OTHER_TENANT}/dynamic"
    lid = lease["lease_id"]
    probes = [
        ("GET", f"{b}/engines/shared-name", None, "engine_not_found"),
        ("PATCH", f"{b}/engines/shared-name", {"max_ttl": "1h"}, "engine_not_found"),
        ("DELETE", f"{b}/engines/shared-name?revoke_leases=true", None, "engine_not_found"),
        ("POST", f"{b}/engines/shared-name/revocation/pause", None, "engine_not_found"),
        ("POST", f"{b}/engines/shared-name/revocation/resume", None, "engine_not_found"),
        ("POST", f"{b}/engines/shared-name/rotate-root", None, "engine_not_found"),
        ("GET", f"{b}/engines/shared-name/roles", None, "engine_not_found"),
        ("POST", f"{b}/engines/shared-name/roles", {"name": "x", "creation_statements": ['CREATE ROLE "{{name}}"']},
         "engine_not_found"),
        ("GET", f"{b}/engines/shared-name/roles/readonly", None, "engine_not_found"),
        ("PATCH", f"{b}/engines/shared-name/roles/readonly", {"default_ttl": "1m"}, "engine_not_found"),
        ("DELETE", f"{b}/engines/shared-name/roles/readonly", None, "engine_not_found"),
        ("POST", f"{b}/engines/shared-name/creds/readonly", {}, "engine_not_found"),
        ("POST", f"{b}/leases/revoke-prefix", {"prefix": "shared-name"}, "engine_not_found"),
        ("GET", f"{b}/leases/{lid}", None, "lease_not_found"),
        ("POST", f"{b}/leases/{lid}/renew", {}, "lease_not_found"),
        ("POST", f"{b}/leases/{lid}/revoke", None, "lease_not_found"),
    ]
    for method, url, body, code in probes:
        r = await stack.api.request(method, url, headers=partner, json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == code, (method, url, r.text)
    for url, key in ((f"{b}/engines", "engines"), (f"{b}/leases", "leases")):
        r = await stack.api.get(url, headers=partner)
        assert r.status_code == 200 and r.json()[key] == [], r.text
    missing = await stack.api.get("/v1/dynamic/leases/lease_01XXXXXXXXXXXXXXXXXXXXXXXX", headers=stack.admin)
    assert missing.json()["error"]["code"] == "lease_not_found"
    assert await stack.target.role_exists(lease["data"]["username"])
    assert (await stack.lease(lid))["status"] == "active"
    assert (await stack.api.get("/v1/dynamic/engines/shared-name", headers=stack.admin)).json()[
        "revocation_paused"] is False


async def test_concurrent_issues_each_get_their_own_audit_entry_and_event(stack) -> None:
    """Concurrent credentials share group commits (services/dynamic/batch.py): each lease still gets exactly one
    dynamic_generate entry (its caller, its request id) and one lease.created event (its request id), and the
    password is in neither."""
    eng = await stack.engine()
    await stack.role(eng["name"])
    rs = await asyncio.gather(*(stack.api.post(f"/v1/dynamic/engines/{eng['name']}/creds/readonly", json={},
                                               headers={**stack.admin, "X-Request-ID": f"req-dyn-{i:02d}"})
                                for i in range(24)))
    assert [r.status_code for r in rs] == [200] * 24, [r.text for r in rs if r.status_code != 200]
    by_lease = {r.json()["lease_id"]: r.headers["X-Request-ID"] for r in rs}
    assert len(by_lease) == 24 and sorted(by_lease.values()) == [f"req-dyn-{i:02d}" for i in range(24)]
    rows = await stack.sql("SELECT status, count(*) AS n FROM dynamic_leases GROUP BY status")
    assert [(x["status"], x["n"]) for x in rows] == [("active", 24)]
    audits = await stack.sql("SELECT resource_id, request_id, identity_id, success, extra_data::text AS extra"
                             " FROM audit_log WHERE action = 'dynamic_generate'")
    assert sorted(a["resource_id"] for a in audits) == sorted(by_lease)
    for a in audits:
        assert a["success"] and a["identity_id"] == "sa:dev-admin" and a["request_id"] == by_lease[a["resource_id"]]
    events = await stack.sql("SELECT request_id, identity_id, data->>'lease_id' AS lease_id FROM events"
                             " WHERE event_type = 'lease.created'")
    assert sorted(e["lease_id"] for e in events) == sorted(by_lease)
    for e in events:
        assert e["request_id"] == by_lease[e["lease_id"]] and e["identity_id"] == "sa:dev-admin"
    passwords = [r.json()["data"]["password"] for r in rs]
    dump = orjson.dumps([dict(x) for x in audits] + [dict(x) for x in events], default=str).decode()
    assert not any(pw in dump for pw in passwords)
    users = {r.json()["data"]["username"]: r.json()["data"]["password"] for r in rs}
    assert sorted(await stack.target.generated_roles()) == sorted(users)
    for user, pw in list(users.items())[:3]:
        assert await stack.target.password_matches(user, pw)
