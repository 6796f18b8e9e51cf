"""/v1/secret-policies: CRUD, preview (never stored), and generate against the documented writer interface."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from tests.helpers import CI, bearer, client_token

from .test_enforcement import grant

PASSWORD = {"name": "db-passwords", "policy_type": "password", "description": "32-char passwords", "fields": [
    {"name": "password", "generator": "random",
     "config": {"length": 32, "charset": "safe", "require_upper": True, "require_digit": True}},
    {"name": "username", "generator": "static", "config": {"value": "svc-app"}},
]}


async def create(api, admin, body=PASSWORD) -> dict[str, Any]:
    r = await api.post("/v1/secret-policies", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_crud_and_static_values_stay_write_only(api, admin, db_url):
    sp = await create(api, admin)
    assert sp["id"].startswith("sp_") and sp["policy_type"] == "password" and sp["is_active"] is True
    assert sp["fields"][1]["config"]["value"] == "********"
    got = (await api.get(f"/v1/secret-policies/{sp['id']}", headers=admin)).json()
    assert got == sp
    listed = (await api.get("/v1/secret-policies", headers=admin)).json()
    assert [x["id"] for x in listed["secret_policies"]] == [sp["id"]] and listed["has_more"] is False

    # echoing the redacted GET body keeps the stored static value
    got["description"] = "changed"
    r = await api.put(f"/v1/secret-policies/{sp['id']}", json=got, headers=admin)
    assert r.status_code == 200, r.text
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval("SELECT fields->1->'config'->>'value' FROM secret_policies WHERE id = $1", sp["id"])
    finally:
        await conn.close()
    assert stored == "svc-app"
    r = await api.patch(f"/v1/secret-policies/{sp['id']}", json={"is_active": False}, headers=admin)
    assert r.json()["is_active"] is False and r.json()["description"] == "changed"
    assert (await api.get("/v1/secret-policies", headers=admin)).json()["secret_policies"] == []

    assert (await api.delete(f"/v1/secret-policies/{sp['id']}", headers=admin)).status_code == 204
    r = await api.get(f"/v1/secret-policies/{sp['id']}", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_policy_not_found"


@pytest.mark.parametrize(("fields", "status", "code", "field"), [
    ([{"name": "p", "generator": "random", "config": {"length": 0}}], 400, "invalid_config", "fields[0].config.length"),
    ([{"name": "p", "generator": "magic"}], 400, "invalid_config", "fields[0].generator"),
    ([], 422, "validation_error", "fields"),
])
async def test_validation_points_at_the_field(api, admin, fields, status, code, field):
    r = await api.post("/v1/secret-policies", json={"name": "x", "fields": fields}, headers=admin)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["details"]["field"] == field


async def test_duplicate_name_conflicts(api, admin):
    await create(api, admin)
    r = await api.post("/v1/secret-policies", json=PASSWORD, headers=admin)
    assert r.status_code == 409


async def test_preview_generates_a_fresh_sample_each_time(api, admin):
    sp = await create(api, admin)
    first = await api.post(f"/v1/secret-policies/{sp['id']}/preview", headers=admin)
    second = await api.post(f"/v1/secret-policies/{sp['id']}/preview", headers=admin)
    assert first.status_code == 200, first.text
    a, b = first.json(), second.json()
    assert a["stored"] is False and set(a["data"]) == {"password", "username"}
    assert len(a["data"]["password"]) == 32 and a["data"]["password"] != b["data"]["password"]
    assert a["data"]["username"] == "********"
    keypair = await create(api, admin, {"name": "ssh", "policy_type": "ssh_key", "fields": [
        {"name": "private_key", "generator": "ssh_keypair", "config": {"key_type": "ed25519", "comment": "ci"}}]})
    data = (await api.post(f"/v1/secret-policies/{keypair['id']}/preview", headers=admin)).json()["data"]
    assert data["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert data["public_key"].startswith("ssh-ed25519 ") and data["public_key"].endswith(" ci")


async def test_generate_writes_a_version_end_to_end_and_returns_no_values(api, admin, scaikey):
    sp = await create(api, admin)
    ci = bearer(await client_token(scaikey, CI))  # secrets:read secrets:write
    body = {"path": "app/db/credentials"}
    r = await api.post(f"/v1/secret-policies/{sp['id']}/generate", json=body, headers=ci)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/**", "permissions": ["write", "read"]}])
    r = await api.post(f"/v1/secret-policies/{sp['id']}/generate", json=body, headers=ci)
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["path"] == "app/db/credentials" and meta["version"] == 1 and "data" not in meta
    got = (await api.get("/v1/secrets/app/db/credentials", headers=ci)).json()
    assert got["data"]["username"] == "svc-app" and len(got["data"]["password"]) == 32
    assert got["data"]["password"] not in r.text
    again = await api.post(f"/v1/secret-policies/{sp['id']}/generate", json=body, headers=ci)
    assert again.json()["version"] == 2
    newer = (await api.get("/v1/secrets/app/db/credentials", headers=ci)).json()["data"]["password"]
    assert newer != got["data"]["password"]
    r = await api.post(f"/v1/secret-policies/{sp['id']}/generate", json={"path": "Bad"}, headers=ci)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path"


async def test_generate_hands_values_to_the_writer_and_returns_metadata_only(api, admin, scaikey, monkeypatch):
    calls: list[dict[str, Any]] = []

    async def write_generated(state, ctx, *, path, secret_type, data, secret_policy_id):
        calls.append({"path": path, "secret_type": secret_type, "data": data, "sp": secret_policy_id,
                      "identity": ctx.principal.identity_id})
        return {"path": path, "version": 1, "secret_type": secret_type, "secret_policy_id": secret_policy_id,
                "data": data}

    module = types.ModuleType("services.secrets.writes")
    module.write_generated = write_generated  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "services.secrets.writes", module)

    sp = await create(api, admin)
    await grant(api, admin, "sa:ci-deployer", [{"path_pattern": "app/**", "permissions": ["write"]}])
    ci = bearer(await client_token(scaikey, CI))
    r = await api.post(f"/v1/secret-policies/{sp['id']}/generate", json={"path": "app/db"}, headers=ci)
    assert r.status_code == 201, r.text
    assert r.json() == {"path": "app/db", "version": 1, "secret_type": "kv", "secret_policy_id": sp["id"]}
    [call] = calls
    assert call["identity"] == "sa:ci-deployer" and call["sp"] == sp["id"]
    assert call["data"]["username"] == "svc-app" and len(call["data"]["password"]) == 32

    r = await api.post(f"/v1/secret-policies/{sp['id']}/generate", headers=ci,
                       json={"path": "app/db", "secret_type": "blob"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_secret_type"
    await api.patch(f"/v1/secret-policies/{sp['id']}", json={"is_active": False}, headers=admin)
    r = await api.post(f"/v1/secret-policies/{sp['id']}/generate", json={"path": "app/db"}, headers=ci)
    assert r.status_code == 409
