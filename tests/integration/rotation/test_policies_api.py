"""Rotation policies through HTTP (lifecycle.md §1.1, §1.4): CRUD, validation (each bad input changes nothing),
attach/detach, PUT options.rotation_policy_id, :metadata rotation_status."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.asyncio


def _p(prefix: str = "rot") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}/db"


async def _count(stack) -> int:
    return len((await stack.api.get("/v1/rotation/policies?limit=1000", headers=stack.admin)).json()["data"])


async def test_create_read_patch_list_delete(stack) -> None:
    name = f"quarterly-{uuid.uuid4().hex[:8]}"
    pol = await stack.policy(name=name, interval="90d", warn_before="7d,30d,1d", description="db passwords")
    assert pol["id"].startswith("rot_") and pol["interval_seconds"] == 7776000
    assert pol["grace_period"] == "48h" and pol["warn_before"] == "30d,7d,1d"
    assert pol["auto_generate"] is False and pol["is_active"] is True and pol["secrets_count"] == 0
    assert pol["created_at"].endswith("Z") and pol["webhook_ids"] == []
    got = (await stack.api.get(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)).json()
    assert got == pol
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", json={"interval": "30d", "warn_before": ["7d"]},
                              headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json()["interval_seconds"] == 2592000 and r.json()["warn_before"] == "7d" and r.json()["name"] == name
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/disable", headers=stack.admin)
    assert r.status_code == 200 and r.json()["is_active"] is False
    listed = (await stack.api.get("/v1/rotation/policies?active_only=true&limit=1000", headers=stack.admin)).json()
    assert pol["id"] not in {p["id"] for p in listed["data"]} and listed["has_more"] is False
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/enable", headers=stack.admin)
    assert r.json()["is_active"] is True
    r = await stack.api.delete(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)
    assert r.status_code == 204
    r = await stack.api.get(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "rotation_policy_not_found"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"interval": "90x"}, 400, "invalid_duration"),
    ({"interval": "soon"}, 400, "invalid_duration"),
    ({"warn_before": "7d,1fortnight"}, 400, "invalid_duration"),
    ({"grace_period": "2 days"}, 400, "invalid_duration"),
    ({"warn_before": "91d"}, 422, "validation_error"),
    ({"warn_before": "90d"}, 422, "validation_error"),
    ({"grace_period": "91d"}, 422, "validation_error"),
    ({"secret_policy_id": "sp_doesnotexist"}, 404, "secret_policy_not_found"),
    ({"auto_generate": "yes"}, 422, "validation_error"),
    ({"unknown_field": 1}, 422, "validation_error"),
])
async def test_bad_input_gets_its_error_and_changes_nothing(stack, body, status, code) -> None:
    before = await _count(stack)
    r = await stack.api.post("/v1/rotation/policies", json={"name": f"bad-{uuid.uuid4().hex[:8]}", "interval": "90d",
                                                            **body}, headers=stack.admin)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert await _count(stack) == before


async def test_missing_fields_duplicate_name_and_patch_errors(stack) -> None:
    r = await stack.api.post("/v1/rotation/policies", json={"interval": "90d"}, headers=stack.admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    pol = await stack.policy()
    before = await _count(stack)
    r = await stack.api.post("/v1/rotation/policies", json={"name": pol["name"], "interval": "7d"}, headers=stack.admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    other = await stack.policy()
    r = await stack.api.patch(f"/v1/rotation/policies/{other['id']}", json={"name": pol["name"]}, headers=stack.admin)
    assert r.status_code == 409
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", json={"warn_before": "100d"}, headers=stack.admin)
    assert r.status_code == 422
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", json={"interval": "1h"}, headers=stack.admin)
    assert r.status_code == 422  # the default 48h grace would be longer than the interval
    assert (await stack.api.get(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)).json() == pol
    assert await _count(stack) == before + 1
    r = await stack.api.patch("/v1/rotation/policies/rot_nope", json={"interval": "7d"}, headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "rotation_policy_not_found"


async def test_attach_detach_and_metadata_rotation_status(stack) -> None:
    pol = await stack.policy(warn_before="7d")
    path = _p()
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/secrets", json={"secret_path": path},
                             headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    assert (await stack.put(path, {"password": "v1"})).status_code == 201
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/secrets", json={"secret_path": path},
                             headers=stack.admin)
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["policy_id"] == pol["id"] and a["secret_path"] == path and a["last_rotated_at"] is None
    assert a["next_rotation_at"] > a["assigned_at"]
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()
    assert meta["rotation_policy_id"] == pol["id"]
    rs = meta["rotation_status"]
    assert rs["policy_id"] == pol["id"] and rs["status"] == "scheduled" and rs["due"] is False
    assert rs["next_rotation_at"] == a["next_rotation_at"] and rs["overdue"] is False
    assert (await stack.api.get(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)).json()["secrets_count"] == 1
    r = await stack.api.delete(f"/v1/rotation/policies/{pol['id']}/secrets/{quote(path, safe='')}",
                               headers=stack.admin)
    assert r.status_code == 204, r.text
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()
    assert meta["rotation_policy_id"] is None and meta["rotation_status"] is None
    r = await stack.api.delete(f"/v1/rotation/policies/{pol['id']}/secrets/{quote(path, safe='')}",
                               headers=stack.admin)
    assert r.status_code == 404


async def test_attach_deleted_secret_is_404(stack) -> None:
    pol = await stack.policy()
    path = _p()
    await stack.put(path, {"password": "v1"})
    assert (await stack.api.delete(f"/v1/secrets/{path}", headers=stack.admin)).status_code == 204
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/secrets", json={"secret_path": path},
                             headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    assert (await stack.sql("SELECT 1 FROM rotation_assignments WHERE policy_id = $1", pol["id"])) == []


async def test_put_with_rotation_policy_id(stack) -> None:
    path = _p()
    r = await stack.put(path, {"password": "v1"}, rotation_policy_id="rot_doesnotexist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "rotation_policy_not_found"
    r = await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)
    assert r.status_code == 404  # nothing was written
    pol = await stack.policy()
    r = await stack.put(path, {"password": "v1"}, rotation_policy_id=pol["id"])
    assert r.status_code == 201 and r.json()["rotation_policy_id"] == pol["id"]
    meta = (await stack.api.get(f"/v1/secrets/{path}:metadata", headers=stack.admin)).json()
    assert meta["rotation_status"]["policy_id"] == pol["id"]
    # an update that moves it to an unknown policy is refused and keeps the attachment
    r = await stack.put(path, {"password": "v2"}, rotation_policy_id="rot_unknown")
    assert r.status_code == 404 and await stack.versions(path) == [1]
    # PATCH options.rotation_policy_id: null detaches
    r = await stack.api.patch(f"/v1/secrets/{path}", json={"options": {"rotation_policy_id": None}},
                              headers=stack.admin)
    assert r.status_code == 200, r.text
    assert await stack.sql("SELECT 1 FROM rotation_assignments a JOIN secrets s ON s.id = a.secret_id"
                           " WHERE s.path = $1", path) == []


async def test_rotate_unattached_secret_is_409_and_missing_is_404(stack) -> None:
    path = _p()
    await stack.put(path, {"password": "v1"})
    r = await stack.api.post(f"/v1/secrets/{path}:rotate", headers=stack.admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = await stack.api.post(f"/v1/secrets/{_p()}:rotate", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"


async def test_rotate_all_attached_covers_only_paths_the_caller_may_rotate(stack) -> None:
    import json
    from pathlib import Path

    import httpx

    from tests.helpers import bearer, grant, reset_emulator, user_token

    pol = await stack.policy()
    base = _p("rotall").rsplit("/", 1)[0]
    mine, other = f"{base}/mine", f"{base}/other"
    for path in (mine, other):
        assert (await stack.put(path, {"password": "v1"}, rotation_policy_id=pol["id"])).status_code == 201
    email = f"rotator-{uuid.uuid4().hex[:6]}@acme.example"  # a user of its own: no grant from other tests
    seed = json.loads((Path(__file__).resolve().parents[3] / "scaikey_emulator/seeds/dev.json").read_text())
    seed["users"].append({"id": "usr_rotator", "tenant_id": "tnt_acme_prod", "email": email, "first_name": "R",
                          "last_name": "R"})
    async with httpx.AsyncClient() as c:
        assert (await c.post(f"{stack.scaikey}/_emulator/seed", json=seed)).status_code == 200
    try:
        await grant(stack.api, stack.admin, [f"user:{email}"], pattern=mine, permissions=("rotate",),
                    name=f"rot-{uuid.uuid4().hex[:6]}")
        h = bearer(await user_token(stack.scaikey, email, scope="secrets:rotate"))
    finally:
        await reset_emulator(stack.scaikey)
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/rotate", headers=h)
    assert r.status_code == 200, r.text
    assert [i["secret_path"] for i in r.json()] == [mine]  # the other attached path is neither rotated nor named
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/rotate", json={"secret_paths": [other]}, headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    rows = await stack.sql("SELECT secret_path FROM rotation_history WHERE policy_id = $1", pol["id"])
    assert [x["secret_path"] for x in rows] == [mine]
