"""A rotation policy's ``webhook_ids`` route its rotation events (lifecycle.md §1.1; services/rotation/routing.py):
through HTTP, a worker subprocess (rotation + the event relay) and real webhook receivers. The ids are validated
against the tenant (404 ``webhook_not_found``), and a named webhook whose owner may not see the path gets nothing
until the owner is granted ``list``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.helpers import OTHER_TENANT, PARTNER_ADMIN, bearer, client_token, grant, poll, user_token

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
ROUTED = {"rotation.completed", "secret.rotated"}


async def _webhook(stack, headers: dict[str, str], url: str, secret: str, events: list[str],
                   base: str = "/v1") -> str:
    r = await stack.api.post(f"{base}/webhooks", headers=headers, json={
        "name": f"rot-{uuid.uuid4().hex[:8]}", "url": url, "secret": secret, "events": events})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _types(rx: Any, path: str) -> list[str]:
    return sorted(x.event["event_type"] for x in rx.received if x.event.get("path") == path)


async def test_policy_webhooks_get_its_rotation_events_within_the_owner_visibility(
        stack, worker_process, receiver_factory, hook_secret) -> None:
    worker_process(stack.settings)
    named, unnamed, blind = (receiver_factory([hook_secret]) for _ in range(3))
    # subscribed to nothing rotation-related: only the policy sends it rotation events
    named_id = await _webhook(stack, stack.admin, named.url, hook_secret, ["certificate.issued"])
    # subscribed to secret.updated only, and not named on the policy: gets exactly that
    await _webhook(stack, stack.admin, unnamed.url, hook_secret, ["secret.updated"])
    # created by a user with the admin scope but no path permission (owner visibility)
    owner = "carol@acme.example"  # a seeded user the test's fresh database grants nothing
    owner_hdr = bearer(await user_token(stack.scaikey, owner, scope="admin"))
    blind_id = await _webhook(stack, owner_hdr, blind.url, hook_secret, ["certificate.issued"])

    pol = await stack.policy(auto_generate=True, webhook_ids=[named_id, blind_id])
    assert pol["webhook_ids"] == [named_id, blind_id]
    path = f"rot/route/{uuid.uuid4().hex[:10]}"
    r = await stack.put(path, {"password": "v1-value"}, rotation_policy_id=pol["id"])
    assert r.status_code == 201, r.text

    r = await stack.api.post(f"/v1/secrets/{path}:rotate", headers=stack.admin)
    assert r.status_code == 200, r.text

    async def named_got_both() -> bool:
        return set(_types(named, path)) >= ROUTED

    await poll(named_got_both, "the policy's rotation events at the named webhook")
    assert _types(named, path) == ["rotation.completed", "secret.rotated"]  # not secret.updated: not routed
    assert all(x.verified for x in named.received)
    await poll(lambda: asyncio.sleep(0, result=_types(unnamed, path) == ["secret.updated"]),
                "secret.updated at the unnamed webhook")
    # the relay decided the blind webhook's share in the batch that gave the named one its events
    rows = await stack.sql("SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = $1", blind_id)
    assert rows[0]["n"] == 0 and _types(blind, path) == []

    # the owner may now list the path: the next rotation reaches the blind webhook too
    await grant(stack.api, stack.admin, [f"user:{owner}"], pattern="rot/route/**", permissions=("list",),
                name=f"rot-route-{uuid.uuid4().hex[:6]}")
    # a process's policy index re-reads its Redis version counter at most every second
    # (services/policy_access.py): let the relay's copy notice the grant before the events are fanned out
    await asyncio.sleep(2.0)
    r = await stack.api.post(f"/v1/rotation/policies/{pol['id']}/rotate", headers=stack.admin,
                             json={"secret_paths": [path]})
    assert r.status_code == 200, r.text

    async def blind_got_both() -> bool:
        return set(_types(blind, path)) >= ROUTED

    await poll(blind_got_both, "the second rotation's events at the now-permitted owner's webhook")
    assert _types(blind, path) == ["rotation.completed", "secret.rotated"]
    assert [x.event["data"]["new_version"] for x in blind.received if x.event["event_type"] == "secret.rotated"] == [3]
    assert _types(named, path) == ["rotation.completed", "rotation.completed", "secret.rotated", "secret.rotated"]


async def test_webhook_ids_must_be_webhooks_of_the_tenant(stack, receiver_factory, hook_secret) -> None:
    url = receiver_factory([hook_secret]).url
    erin = bearer(await user_token(stack.scaikey, "erin@acme.example", scope="secrets:read"))
    assert (await stack.api.get("/v1/auth/whoami", headers=erin)).status_code == 200  # tenant B is recorded
    partner = bearer(await client_token(stack.scaikey, PARTNER_ADMIN))
    foreign = await _webhook(stack, partner, url, hook_secret, ["rotation.*"],
                             base=f"/v1/t/{OTHER_TENANT}")
    mine = await _webhook(stack, stack.admin, url, hook_secret, ["rotation.*"])
    name = f"pol-{uuid.uuid4().hex[:8]}"
    for bad in ("wh_missing", foreign):
        r = await stack.api.post("/v1/rotation/policies", headers=stack.admin, json={
            "name": name, "interval": "90d", "webhook_ids": [mine, bad]})
        assert r.status_code == 404, r.text
        err = r.json()["error"]
        assert err["code"] == "webhook_not_found" and err["details"] == {"id": bad}
    # the foreign id answers exactly like a missing one (same message shape), and nothing was created
    assert not await stack.sql("SELECT 1 FROM rotation_policies WHERE name = $1", name)
    pol = await stack.policy(name=name, webhook_ids=[mine])
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin,
                              json={"webhook_ids": [foreign]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found"
    r = await stack.api.get(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin)
    assert r.json()["webhook_ids"] == [mine]
    # a subscription's internal webhook is not a /v1/webhooks webhook either
    r = await stack.api.post("/v1/subscriptions", headers=stack.admin, json={
        "name": f"sub-{uuid.uuid4().hex[:6]}", "paths": ["**"], "events": ["rotation.*"],
        "delivery": {"type": "webhook", "url": url, "secret": hook_secret}})
    assert r.status_code == 201, r.text
    [sub_hook] = await stack.sql("SELECT id FROM webhooks WHERE subscription_id = $1", r.json()["id"])
    r = await stack.api.patch(f"/v1/rotation/policies/{pol['id']}", headers=stack.admin,
                              json={"webhook_ids": [sub_hook["id"]]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found"
