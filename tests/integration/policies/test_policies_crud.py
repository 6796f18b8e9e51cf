"""Access-policy CRUD and bindings through the HTTP API (spec core.md §10.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import PARTNER_ADMIN, TENANT, bearer, client_token, user_token

OK_RULE = {"path_pattern": "app/**", "permissions": ["read", "list"]}


def policy(name: str = "app-read", **extra: Any) -> dict[str, Any]:
    return {"name": name, "rules": [OK_RULE], **extra}


async def create(api: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post("/v1/policies", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_returns_full_policy_and_get_includes_rules_and_bindings(api, admin):
    body = await create(api, admin, policy(description="read app", rules=[
        {"path_pattern": "app/**", "permissions": ["read", "write", "delete", "list", "rotate"]},
        {"path_pattern": "shared/certs/*", "permissions": ["read"],
         "conditions": {"ip_ranges": ["10.0.0.0/8"], "require_mfa": True}},
    ]))
    assert body["id"].startswith("pol_")
    assert body["name"] == "app-read" and body["description"] == "read app"
    assert body["is_active"] is True and body["scope"] == "tenant"
    assert body["created_at"].endswith("Z")
    # normalised: all five permissions become ["admin"]; mfa_max_age default made explicit
    assert body["rules"][0] == {"path_pattern": "app/**", "permissions": ["admin"]}
    assert body["rules"][1]["conditions"] == {"ip_ranges": ["10.0.0.0/8"], "require_mfa": True, "mfa_max_age": 900}

    r = await api.post(f"/v1/policies/{body['id']}/bindings", headers=admin,
                       json={"identity_type": "group", "identity_id": "group:developers"})
    assert r.status_code == 201, r.text
    got = (await api.get(f"/v1/policies/{body['id']}", headers=admin)).json()
    assert got["rules"] == body["rules"]
    assert [b["identity_id"] for b in got["bindings"]] == ["group:developers"]

    listed = (await api.get("/v1/policies", headers=admin)).json()
    assert listed["has_more"] is False and listed["cursor"] is None
    [item] = listed["policies"]
    assert item["rule_count"] == 2 and item["binding_count"] == 1 and item["id"] == body["id"]


BAD_BODIES = [
    ({"name": "x", "rules": [OK_RULE, OK_RULE, {"path_pattern": "/bad", "permissions": ["read"]}]},
     "invalid_glob", "rules[2].path_pattern"),
    ({"name": "x", "rules": [OK_RULE, {"path_pattern": "a/*", "permissions": ["fly"]}]},
     "invalid_policy", "rules[1].permissions[0]"),
    ({"name": "x", "rules": [{"path_pattern": "a", "permissions": ["read"],
                              "conditions": {"ip_ranges": ["10.0.0.1/8"]}}]},
     "invalid_policy", "rules[0].conditions.ip_ranges[0]"),
    ({"name": "x", "rules": [{"path_pattern": "a", "permissions": ["read"],
                              "conditions": {"time_window": {"start": "25:00", "end": "10:00"}}}]},
     "invalid_policy", "rules[0].conditions.time_window.start"),
    ({"name": "x", "rules": [{"path_pattern": "a", "permissions": []}]}, "invalid_policy", "rules[0].permissions"),
    ({"rules": [OK_RULE]}, "invalid_policy", "name"),
    ({"name": "x", "rules": []}, "invalid_policy", "rules"),
    ({"name": "x", "rules": [OK_RULE], "owner": "me"}, "invalid_policy", "owner"),
    ({"name": "x", "rules": [OK_RULE], "scope": "galaxy"}, "invalid_policy", "scope"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_BODIES)
async def test_validation_errors_point_at_the_bad_element(api, admin, body, code, field):
    r = await api.post("/v1/policies", json=body, headers=admin)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["details"]["field"]) == (code, field)


async def test_non_object_body_is_invalid_request(api, admin):
    r = await api.post("/v1/policies", json=[policy()], headers=admin)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"


async def test_duplicate_name_is_a_conflict(api, admin):
    await create(api, admin, policy("dup"))
    r = await api.post("/v1/policies", json=policy("dup"), headers=admin)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["field"] == "name"


async def test_put_replaces_rules_and_keeps_bindings(api, admin):
    p = await create(api, admin, policy())
    await api.post(f"/v1/policies/{p['id']}/bindings", headers=admin,
                   json={"identity_type": "user", "identity_id": "user:bob@acme.example"})
    new_rules = [{"path_pattern": "other/*", "permissions": ["write"]}]
    r = await api.put(f"/v1/policies/{p['id']}", headers=admin, json={"name": "renamed", "rules": new_rules})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "renamed" and body["description"] == ""
    assert body["rules"] == new_rules
    assert [b["identity_id"] for b in body["bindings"]] == ["user:bob@acme.example"]
    # echoing a GET body back is accepted (read-only keys ignored)
    got = (await api.get(f"/v1/policies/{p['id']}", headers=admin)).json()
    assert (await api.put(f"/v1/policies/{p['id']}", headers=admin, json=got)).status_code == 200


async def test_patch_changes_a_subset_and_validates(api, admin):
    p = await create(api, admin, policy(description="before"))
    r = await api.patch(f"/v1/policies/{p['id']}", headers=admin, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False and r.json()["description"] == "before"
    assert (await api.get("/v1/policies", headers=admin)).json()["policies"] == []
    listed = (await api.get("/v1/policies?include_inactive=true", headers=admin)).json()["policies"]
    assert [x["id"] for x in listed] == [p["id"]]

    r = await api.patch(f"/v1/policies/{p['id']}", headers=admin,
                        json={"rules": [OK_RULE, {"path_pattern": "x//y", "permissions": ["read"]}]})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "rules[1].path_pattern"
    r = await api.patch(f"/v1/policies/{p['id']}", headers=admin, json={"id": "pol_other"})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "id"
    r = await api.patch(f"/v1/policies/{p['id']}", headers=admin, json={"scope": "partner"})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "scope"


async def test_delete_is_refused_while_bound_unless_forced(api, admin):
    p = await create(api, admin, policy())
    r = await api.post(f"/v1/policies/{p['id']}/bindings", headers=admin,
                       json={"identity_type": "service_account", "identity_id": "sa:ci-deployer"})
    assert r.status_code == 201
    r = await api.delete(f"/v1/policies/{p['id']}", headers=admin)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "policy_in_use"
    assert r.json()["error"]["details"]["binding_count"] == 1
    r = await api.delete(f"/v1/policies/{p['id']}?force=true", headers=admin)
    assert r.status_code == 204
    r = await api.get(f"/v1/policies/{p['id']}", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "policy_not_found"
    unbound = await create(api, admin, policy("unbound"))
    assert (await api.delete(f"/v1/policies/{unbound['id']}", headers=admin)).status_code == 204


BAD_BINDINGS = [
    ({"identity_type": "robot", "identity_id": "robot:x"}, "identity_type"),
    ({"identity_type": "user", "identity_id": "sa:ci-deployer"}, "identity_id"),
    ({"identity_type": "group", "identity_id": "group:"}, "identity_id"),
    ({"identity_type": "user", "identity_id": "user:a@b.c", "expires_at": "yesterday"}, "expires_at"),
    ({"identity_type": "user", "identity_id": "user:a@b.c", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"identity_type": "user", "identity_id": "user:a@b.c", "role": "x"}, "role"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BINDINGS)
async def test_binding_validation(api, admin, body, field):
    p = await create(api, admin, policy())
    r = await api.post(f"/v1/policies/{p['id']}/bindings", headers=admin, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_policy"
    assert r.json()["error"]["details"]["field"] == field


async def test_binding_lifecycle(api, admin):
    p = await create(api, admin, policy())
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    r = await api.post(f"/v1/policies/{p['id']}/bindings", headers=admin,
                       json={"identity_type": "user", "identity_id": "user:bob@acme.example", "expires_at": expires})
    assert r.status_code == 201
    b = r.json()
    assert b["id"].startswith("bnd_") and b["policy_id"] == p["id"] and b["expires_at"].endswith("Z")
    dup = await api.post(f"/v1/policies/{p['id']}/bindings", headers=admin,
                         json={"identity_type": "user", "identity_id": "user:bob@acme.example"})
    assert dup.status_code == 409
    listed = (await api.get(f"/v1/policies/{p['id']}/bindings", headers=admin)).json()["bindings"]
    assert [x["id"] for x in listed] == [b["id"]]
    assert (await api.delete(f"/v1/policies/{p['id']}/bindings/{b['id']}", headers=admin)).status_code == 204
    r = await api.delete(f"/v1/policies/{p['id']}/bindings/{b['id']}", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "binding_not_found"
    r = await api.get("/v1/policies/pol_missing/bindings", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "policy_not_found"


async def test_pagination_and_bad_cursor(api, admin):
    ids = [(await create(api, admin, policy(f"p{i}")))["id"] for i in range(3)]
    first = (await api.get("/v1/policies?limit=2", headers=admin)).json()
    assert [x["id"] for x in first["policies"]] == ids[:2] and first["has_more"] is True
    second = (await api.get(f"/v1/policies?limit=2&cursor={first['cursor']}", headers=admin)).json()
    assert [x["id"] for x in second["policies"]] == ids[2:] and second["has_more"] is False
    r = await api.get("/v1/policies?cursor=%%%garbage", headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


async def test_scopes_gate_read_and_write(api, scaikey):
    reader = bearer(await user_token(scaikey, "bob@acme.example", scope="policies:read"))
    assert (await api.get("/v1/policies", headers=reader)).status_code == 200
    r = await api.post("/v1/policies", json=policy(), headers=reader)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "insufficient_scope"
    assert r.json()["error"]["details"]["required_scope"] == "policies:write"
    nobody = bearer(await user_token(scaikey, "bob@acme.example", scope="secrets:read"))
    r = await api.get("/v1/policies", headers=nobody)
    assert r.status_code == 403 and r.json()["error"]["details"]["required_scope"] == "policies:read"


async def test_changes_emit_events_and_audit_in_the_transaction(api, admin, db_url):
    """Each mutation writes one real audit row and one outbox event in the SAME transaction as the change
    (same ``xmin``), read back from PostgreSQL (no stand-in recorder)."""
    p = await create(api, admin, policy())
    r = await api.patch(f"/v1/policies/{p['id']}", headers=admin, json={"description": "x"})
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/policies/{p['id']}/bindings", headers=admin,
                       json={"identity_type": "group", "identity_id": "group:sre"})
    assert r.status_code == 201, r.text
    b = r.json()
    assert (await api.delete(f"/v1/policies/{p['id']}/bindings/{b['id']}", headers=admin)).status_code == 204
    assert (await api.delete(f"/v1/policies/{p['id']}", headers=admin)).status_code == 204
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT event_type, tenant_id, identity_id, data, xmin::text AS tx FROM events"
                                " ORDER BY seq")
        audit = await conn.fetch(
            "SELECT action, tenant_id, identity_id, resource_id, success, xmin::text AS tx FROM audit_log"
            " WHERE action LIKE 'policy\\_%' ORDER BY seq")
    finally:
        await conn.close()
    assert [r["event_type"] for r in rows] == [
        "policy.created", "policy.updated", "policy.binding.created", "policy.binding.deleted", "policy.deleted"]
    assert {r["tenant_id"] for r in rows} == {TENANT} and {r["identity_id"] for r in rows} == {"sa:dev-admin"}
    assert [(a["action"], a["tenant_id"], a["identity_id"], a["success"]) for a in audit] == [
        (action, TENANT, "sa:dev-admin", True)
        for action in ("policy_create", "policy_update", "policy_bind", "policy_unbind", "policy_delete")]
    # one transaction per mutation: its audit row and its event share the transaction id, and no two share one
    assert [a["tx"] for a in audit] == [r["tx"] for r in rows]
    assert len({a["tx"] for a in audit}) == 5


async def test_partner_scope_policies_need_a_partner_admin_and_show_in_every_tenant(api, admin, scaikey):
    r = await api.post("/v1/policies", json=policy("shared", scope="partner"), headers=admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

    partner = bearer(await client_token(scaikey, PARTNER_ADMIN))
    shared = await create(api, partner, policy("shared", scope="partner"))
    assert shared["scope"] == "partner" and shared["partner_id"] == "prt_acme"
    local = await create(api, admin, policy("local"))

    erin = bearer(await user_token(scaikey, "erin@acme.example", scope="policies:read"))
    assert (await api.get("/v1/auth/whoami", headers=erin)).json()["tenant_id"] == "tnt_acme_dev"  # now known
    other = {**partner, "X-Tenant-ID": "tnt_acme_dev"}
    listed = (await api.get("/v1/policies", headers=other)).json()["policies"]
    assert [x["id"] for x in listed] == [shared["id"]]
    assert (await api.get(f"/v1/policies/{local['id']}", headers=other)).status_code == 404
    only_partner = (await api.get("/v1/policies?scope=partner", headers=admin)).json()["policies"]
    assert [x["id"] for x in only_partner] == [shared["id"]]

    # a tenant admin sees it but cannot change it
    assert (await api.get(f"/v1/policies/{shared['id']}", headers=admin)).status_code == 200
    for call in (api.patch(f"/v1/policies/{shared['id']}", headers=admin, json={"description": "x"}),
                 api.delete(f"/v1/policies/{shared['id']}", headers=admin),
                 api.post(f"/v1/policies/{shared['id']}/bindings", headers=admin,
                          json={"identity_type": "group", "identity_id": "group:sre"})):
        r = await call
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
