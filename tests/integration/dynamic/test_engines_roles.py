"""Engines and roles through HTTP against a real PostgreSQL target: test connection on create and PATCH,
connection_status from a live check, bad input errors (and no role left behind), role statement validation."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.asyncio


async def test_engine_crud_and_health(stack) -> None:
    eng = await stack.engine("support-db")
    assert eng["connection_status"] == "connected" and eng["last_error"] is None
    assert "password" not in str(eng) or stack.target.root_password not in str(eng)
    assert stack.target.root_password not in str(eng)
    r = await stack.api.get("/v1/dynamic/engines/support-db", headers=stack.admin)
    assert r.status_code == 200 and r.json()["live_leases"] == 0
    r = await stack.api.get("/v1/dynamic/engines", headers=stack.admin)
    assert [e["name"] for e in r.json()["engines"]] == ["support-db"]
    # the root secret's password changes at the source behind ScaiVault's back: the next live check reports it
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" CONNECTION LIMIT 0')
    await stack.sql("UPDATE dynamic_engines SET last_checked_at = now() - interval '1 hour'")
    r = await stack.api.get("/v1/dynamic/engines/support-db", headers=stack.admin)
    body = r.json()
    assert body["connection_status"] == "error" and "connection" in body["last_error"].lower(), body
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" CONNECTION LIMIT -1')
    await stack.sql("UPDATE dynamic_engines SET last_checked_at = now() - interval '1 hour'")
    r = await stack.api.get("/v1/dynamic/engines/support-db", headers=stack.admin)
    assert r.json()["connection_status"] == "connected"
    changes = await stack.events("engine.health_changed")
    assert [e["data"].count('"error"') > 0 for e in changes] == [True, True]
    # PATCH re-tests; a bad URL is refused and the stored config is unchanged
    r = await stack.api.patch("/v1/dynamic/engines/support-db", headers=stack.admin, json={
        "config": {"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", r.text
    r = await stack.api.patch("/v1/dynamic/engines/support-db", headers=stack.admin, json={"max_ttl": "12h"})
    assert r.status_code == 200 and r.json()["max_ttl"] == "12h", r.text
    r = await stack.api.delete("/v1/dynamic/engines/support-db", headers=stack.admin)
    assert r.status_code == 204
    r = await stack.api.get("/v1/dynamic/engines/support-db", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "engine_not_found"


@pytest.mark.parametrize("config, needle", [
    ({"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/db"}, "test connection failed"),
    ({"connection_url": "mysql://{{username}}:{{password}}@h/db"}, "postgresql://"),
    ({"connection_url": "postgresql://{{username}}:{{password}}@h:99999999/db"}, "Port"),
    ({"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:HANG/db"}, "timed out"),
    ({"root_credentials_path": "no/such/secret"}, "not found"),
    ({"plugin": "mysql"}, "plugin"),
])
async def test_bad_engine_config_is_invalid_config(stack_factory, config, needle) -> None:
    stack = await stack_factory(dynamic_connect_timeout_seconds=1.0)
    path = await stack.root_secret()
    hang = socket.socket()  # accepts TCP connections (backlog) and never answers: the check must time out
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    if "connection_url" in config:
        config = {**config, "connection_url": config["connection_url"].replace("HANG", str(hang.getsockname()[1]))}
    cfg = {"plugin": "postgresql", "connection_url": stack.target.url_template(), "root_credentials_path": path,
           **config}
    r = await stack.api.post("/v1/dynamic/engines", headers=stack.admin,
                             json={"name": "bad", "type": "database", "config": cfg})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_config" and needle in err["message"], err
    assert stack.target.root_password not in r.text
    assert (await stack.api.get("/v1/dynamic/engines/bad", headers=stack.admin)).status_code == 404
    hang.close()


async def test_wrong_root_password_is_invalid_config(stack) -> None:
    # trust auth accepts any password, so make the root role unusable instead: it may not log in
    await stack.target.sql(f'ALTER ROLE "{stack.target.root_user}" NOLOGIN')
    path = await stack.root_secret()
    r = await stack.api.post("/v1/dynamic/engines", headers=stack.admin, json={
        "name": "x", "type": "database", "config": {"plugin": "postgresql",
                                                     "connection_url": stack.target.url_template(),
                                                     "root_credentials_path": path}})
    assert r.status_code == 400 and "not permitted to log in" in r.json()["error"]["message"], r.text


async def test_roles_validate_statements_and_ttls(stack) -> None:
    eng = await stack.engine(max_ttl="2h")
    base = f"/v1/dynamic/engines/{eng['name']}/roles"
    r = await stack.api.post(base, headers=stack.admin, json={"name": "r1", "creation_statements": ["SELECT 1"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_role", r.text
    r = await stack.api.post(base, headers=stack.admin, json={
        "name": "r1", "creation_statements": ['CREATE ROLE "{{name}}" PASSWORD \'{{pasword}}\'']})
    assert r.status_code == 400 and "pasword" in r.text
    r = await stack.api.post(base, headers=stack.admin, json={
        "name": "r1", "creation_statements": ['CREATE ROLE "{{name}}"'], "revocation_statements": ["DROP ROLE x"]})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "revocation_statements"
    r = await stack.api.post(base, headers=stack.admin, json={
        "name": "r1", "creation_statements": ['CREATE ROLE "{{name}}"'], "max_ttl": "3h"})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "max_ttl"
    role = await stack.role(eng["name"], "r1", max_ttl="1h", default_ttl="10m")
    assert role["revocation_statements_default"][-1].startswith("DROP ROLE IF EXISTS")
    r = await stack.api.patch(f"{base}/r1", headers=stack.admin, json={"default_ttl": "30m"})
    assert r.status_code == 200 and r.json()["default_ttl"] == "30m"
    r = await stack.api.get(f"{base}/nope", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "role_not_found"
    r = await stack.api.get("/v1/dynamic/engines/nope/roles", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "engine_not_found"
    assert (await stack.api.delete(f"{base}/r1", headers=stack.admin)).status_code == 204
