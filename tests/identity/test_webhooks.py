"""The ScaiKey webhook receiver over real HTTP: the emulator signs and delivers, the API verifies and applies."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import ADMIN, TENANT, bearer, user_token
from tests.identity.conftest import WEBHOOK_SECRET


async def _fire(emu, stack, *, secret=WEBHOOK_SECRET, **body):
    body.setdefault("tenant_id", TENANT)
    body.setdefault("data", {"id": "usr_bob", "email": "bob@acme.example", "display_name": "Bobby",
                             "status": "ACTIVE", "tenant_id": TENANT})
    out = await emu.control("POST", "/webhooks/fire",
                            json={"url": stack.url + "/v1/identity/webhooks/scaikey", "secret": secret, **body})
    return out["results"][0]


def _status(result, copy=0):
    return [a for a in result["attempts"] if a["copy"] == copy][-1]["status_code"]


async def test_signature_cases(identity_stack, emu):
    async with identity_stack(live=True, worker=False) as stack:
        ok = await _fire(emu, stack, event_type="user.updated")
        assert _status(ok) == 200
        assert '"handled":true' in ok["attempts"][0]["response_body"]
        for breakage, status in [("wrong_secret", 401), ("stale_timestamp", 401), ("future_timestamp", 401),
                                 ("tampered_body", 401), ("missing_signature", 401),
                                 ("malformed_signature", 400), ("missing_timestamp", 400)]:
            res = await _fire(emu, stack, event_type="user.updated", breakage=[breakage])
            assert _status(res) == status, (breakage, res["attempts"])
        wrong = await _fire(emu, stack, event_type="user.updated", secret="not-the-secret")
        assert _status(wrong) == 401
        assert '"invalid_signature"' in wrong["attempts"][0]["response_body"]

        dup = await _fire(emu, stack, event_type="user.created", breakage=["duplicate"])
        assert _status(dup, 0) == 200 and _status(dup, 1) == 200
        second = [a for a in dup["attempts"] if a["copy"] == 1][-1]["response_body"]
        assert '"duplicate":true' in second
        again = await _fire(emu, stack, event_type="user.created", event_id=dup["event_id"])
        assert '"duplicate":true' in again["attempts"][0]["response_body"]

        unknown = await _fire(emu, stack, event_type="session.created", data={"id": "ses_1"})
        assert _status(unknown) == 200 and '"handled":false' in unknown["attempts"][0]["response_body"]

        h = await stack.token(ADMIN)
        r = await stack.api.get(f"/v1/identity/tenants/{TENANT}/users", headers=h)
        users = {u["id"]: u for u in r.json()["users"]}
        assert users["usr_bob"]["display_name"] == "Bobby"  # only the verified deliveries were applied


async def test_secret_unset_fails_closed(identity_stack, emu):
    async with identity_stack(live=True, worker=False, scaikey_webhook_secret="") as stack:
        res = await _fire(emu, stack, event_type="user.updated")
        assert _status(res) == 503
        assert "webhook_secret_not_configured" in res["attempts"][0]["response_body"]
        async with httpx.AsyncClient() as c:  # even an unsigned probe learns nothing else
            r = await c.post(stack.url + "/v1/identity/webhooks/scaikey", content=b"{}")
        assert r.status_code == 503


async def test_suspension_blocks_next_request_and_bootstrap_admin(identity_stack, emu):
    async with identity_stack(live=True, bootstrap_super_admin="user:bob@acme.example",
                              operator_tenant_id=TENANT) as stack:  # an email bootstraps in the operator tenant only
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"
        await emu.admin("POST", "/api/v1/admin/webhooks", json={
            "url": stack.url + "/v1/identity/webhooks/scaikey", "secret": WEBHOOK_SECRET,
            "events": ["user.suspended", "user.activated"]})
        bob = bearer(await user_token(emu.url, "bob@acme.example", scope="identity:read"))
        r = await stack.api.get("/v1/auth/whoami", headers=bob)
        assert r.status_code == 200, r.text
        assert "super_admin" in r.json()["roles"]  # bootstrap at first sign-in, from the cache
        assert "group:oncall" in r.json()["groups"]  # nested membership from the cache
        r = await stack.api.get("/v1/identity/users/usr_bob/roles", headers=bob)
        assert r.json() == {"user_id": "usr_bob", "roles": ["super_admin"], "source": "bootstrap"}

        await emu.admin("POST", "/api/v1/admin/users/usr_bob/suspend")
        await emu.control("POST", "/webhooks/drain")
        r = await stack.api.get("/v1/auth/whoami", headers=bob)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "access_denied"
        assert r.json()["error"]["details"]["reason"] == "user_suspended"

        await emu.admin("POST", "/api/v1/admin/users/usr_bob/activate")
        await emu.control("POST", "/webhooks/drain")
        assert (await stack.api.get("/v1/auth/whoami", headers=bob)).status_code == 200


async def test_scaiflow_envelope_membership_and_resync_signal(identity_stack, emu):
    async with identity_stack(live=True) as stack:
        h = await stack.token(ADMIN)
        assert (await stack.sync_and_wait(h, tenant_id=TENANT))["status"] == "succeeded"

        async def members() -> set[str]:
            r = await stack.api.get("/v1/identity/groups/grp_developers/members", headers=h)
            assert r.status_code == 200, r.text
            return {m["user_id"] for m in r.json()["members"]}

        before = await members()
        assert "usr_carol" not in before
        member = {"group_id": "grp_developers", "group_name": "developers", "user_id": "usr_carol",
                  "email": "carol@acme.example", "member_type": "user", "tenant_id": TENANT}
        added = await _fire(emu, stack, event_type="group.member_added", envelope_style="scaiflow", data=member,
                            resource={"type": "group", "id": "grp_developers"})
        assert added["body"]["type"] == "group_membership.added" and "event_id" not in added["body"]
        assert _status(added) == 200
        assert await members() == before | {"usr_carol"}  # exactly carol was added

        removed = await _fire(emu, stack, event_type="group.member_removed", data=member,
                              resource={"type": "group", "id": "grp_developers"})
        assert _status(removed) == 200
        assert await members() == before  # and exactly carol removed again

        # an assignment change cannot be applied locally: the tenant's workflow runs a sync
        await _fire(emu, stack, event_type="application.group_assigned",
                    data={"application_id": "app_scaivault", "group_id": "grp_oncall", "tenant_id": TENANT})
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            hist = (await stack.api.get("/v1/identity/sync/history", headers=h)).json()["syncs"]
            if any(s["trigger"] == "webhook" and s["status"] == "succeeded" for s in hist):
                break
            assert asyncio.get_running_loop().time() < deadline, f"no webhook-triggered sync: {hist}"
            await asyncio.sleep(0.2)


async def test_tenant_suspension_via_webhook_refuses_the_tenant(identity_stack, emu):
    async with identity_stack(live=True, worker=False) as stack:
        h = await stack.token(ADMIN)
        assert (await stack.api.get("/v1/auth/whoami", headers=h)).status_code == 200
        res = await _fire(emu, stack, event_type="tenant.updated",
                          data={"id": TENANT, "partner_id": "prt_acme", "status": "SUSPENDED"})
        assert _status(res) == 200
        r = await stack.api.get("/v1/auth/whoami", headers=h)
        assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
        r = await stack.api.get("/v1/identity/tenants", headers=h)
        assert r.status_code == 403
