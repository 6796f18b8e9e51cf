"""Root rotation of a PostgreSQL engine through HTTP: the new password is set at the source (its SCRAM verifier
matches) and stored as the root secret's next version; issuing keeps working with it; the password never appears
in a response, the rotation row or the audit log; an interrupted rotation (password set at the source, secret not
yet written) is rolled forward from its sealed pending row."""

from __future__ import annotations

import orjson
import pytest

pytestmark = pytest.mark.asyncio


async def _root(stack) -> dict:  # type: ignore[no-untyped-def]
    r = await stack.api.get("/v1/secrets/infra/postgres/root", headers=stack.admin)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_rotate_root_sets_the_source_then_the_secret(stack) -> None:
    eng = await stack.engine("rot-db")
    await stack.role(eng["name"])
    before = await _root(stack)
    r = await stack.api.post("/v1/dynamic/engines/rot-db/rotate-root", headers=stack.admin)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "completed" and out["new_version"] == before["version"] + 1
    after = await _root(stack)
    new_pw = after["data"]["password"]
    assert new_pw != before["data"]["password"] and after["data"]["username"] == stack.target.root_user
    assert await stack.target.password_matches(stack.target.root_user, new_pw)
    assert new_pw not in r.text
    rows = await stack.sql("SELECT status, sealed_password FROM dynamic_root_rotations")
    assert [(x["status"], x["sealed_password"]) for x in rows] == [("completed", None)]
    dump = orjson.dumps([dict(x) for x in await stack.sql("SELECT * FROM audit_log")], default=str).decode()
    assert new_pw not in dump
    assert [a["identity_id"] for a in await stack.audit("dynamic_root_rotate")] == ["sa:dev-admin"]
    lease = await stack.creds(eng["name"])  # the engine reconnects with the new root password
    assert lease.status_code == 200, lease.text


async def test_interrupted_rotation_is_rolled_forward(stack) -> None:
    """Simulate a crash after step 2: the source has the new password, the secret still the old one."""
    from services.dynamic import root
    from services.pki.common import open_

    eng = await stack.engine("rot-db2")
    state = stack.api._transport.app.state.sv  # type: ignore[attr-defined]
    original = root.complete

    async def crash_after_source(state_, tenant_id, rotation_id):  # type: ignore[no-untyped-def]
        async with state_.db.raw() as conn:
            row = await conn.fetchrow("SELECT * FROM dynamic_root_rotations WHERE id = $1", rotation_id)
        pw = (await open_(state_.components["keyring"], row["sealed_password"],
                          root._aad(tenant_id, row["engine_id"], rotation_id), tenant_id=tenant_id,
                          partner_id=eng.get("partner_id") or "prt_acme")).decode()
        await stack.target.sql(f"ALTER ROLE \"{stack.target.root_user}\" PASSWORD '{pw}'")
        raise RuntimeError("killed")

    root.complete = crash_after_source  # type: ignore[assignment]
    try:
        with pytest.raises(RuntimeError):
            await root.rotate_root(state, _ctx(stack, state), "rot-db2")
    finally:
        root.complete = original  # type: ignore[assignment]
    old = await _root(stack)
    assert not await stack.target.password_matches(stack.target.root_user, old["data"]["password"])
    assert await root.resume_pending(state, older_than_seconds=0) == 1
    new = await _root(stack)
    assert new["version"] == old["version"] + 1
    assert await stack.target.password_matches(stack.target.root_user, new["data"]["password"])
    assert [x["status"] for x in await stack.sql("SELECT status FROM dynamic_root_rotations")] == ["completed"]


def _ctx(stack, state):  # type: ignore[no-untyped-def]
    from audit.recorder import system_context

    return system_context("test", "tnt_acme_prod", partner_id="prt_acme")


async def test_root_secret_on_a_rotation_policy_rotates_through_the_source(stack_factory, worker_process) -> None:
    """The root secret attached to an auto-generating rotation policy: the scheduler's rotation sets the new
    password at the source first (sealed pending row), then writes the version as its rotation."""
    import asyncio
    import time

    stack = await stack_factory()
    worker_process(stack.settings)
    eng = await stack.engine("rot-policy-db")
    await stack.role(eng["name"])
    r = await stack.api.post("/v1/rotation/policies", headers=stack.admin,
                             json={"name": "weekly-root", "interval": "7d", "auto_generate": True})
    assert r.status_code == 201, r.text
    pol = r.json()
    before = await _root(stack)
    r = await stack.api.put("/v1/secrets/infra/postgres/root", headers=stack.admin,
                            json={"data": before["data"], "options": {"rotation_policy_id": pol["id"]}})
    assert r.status_code in (200, 201), r.text
    attached = (await _root(stack))["version"]
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/rotate", headers=stack.admin,
                             json={"secret_paths": ["infra/postgres/root"]})
    assert r.status_code == 200, r.text
    end = time.monotonic() + 90
    while (await _root(stack))["version"] == attached:
        assert time.monotonic() < end, "the rotation did not write a new version"
        await asyncio.sleep(0.3)
    after = await _root(stack)
    assert after["data"]["username"] == stack.target.root_user and after["data"]["password"] != before["data"][
        "password"]
    assert await stack.target.password_matches(stack.target.root_user, after["data"]["password"])
    assert [x["status"] for x in await stack.sql("SELECT status FROM dynamic_root_rotations")] == ["completed"]
    assert (await stack.creds(eng["name"])).status_code == 200


async def test_rotate_root_needs_rotate_on_the_root_secret(stack) -> None:
    """dynamic:manage alone is not enough: the caller must hold ``rotate`` on the root secret's path (its access
    policy); denied answers 403 access_denied and nothing changes at the source or in the secret."""
    from tests.helpers import bearer, grant, user_token

    await stack.engine("rot-perm-db")
    before = await _root(stack)
    alice = bearer(await user_token(stack.scaikey, "alice@acme.example", scope="dynamic:manage"))
    await grant(stack.api, stack.admin, ["user:alice@acme.example"], pattern="infra/**", permissions=("read",),
                name="alice-read-infra")
    r = await stack.api.post("/v1/dynamic/engines/rot-perm-db/rotate-root", headers=alice)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    assert (await _root(stack))["version"] == before["version"]
    assert await stack.target.password_matches(stack.target.root_user, before["data"]["password"])
    assert await stack.sql("SELECT id FROM dynamic_root_rotations") == []
    await grant(stack.api, stack.admin, ["user:alice@acme.example"], pattern="infra/**", permissions=("rotate",),
                name="alice-rotate-infra")
    r = await stack.api.post("/v1/dynamic/engines/rot-perm-db/rotate-root", headers=alice)
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
