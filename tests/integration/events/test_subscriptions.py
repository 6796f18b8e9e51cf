"""Subscriptions: CRUD (owner only), long-poll with ack and redelivery, buffer overflow, webhook delivery."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers import bearer, user_token
from tests.webhook_receiver import wait_for

SCOPES = "subscriptions:read subscriptions:write"


@pytest.fixture
async def alice(stack):
    return bearer(await user_token(stack.scaikey, "alice@acme.example", scope=SCOPES))


async def _create(stack, headers, **body):
    full = {"name": "feed", "paths": ["prod/**"], "events": ["secret.*"], "delivery": {"type": "polling"}, **body}
    r = await stack.api.post("/v1/subscriptions", json=full, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _poll(stack, headers, sid, **params):
    r = await stack.api.get(f"/v1/subscriptions/{sid}/poll", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_crud_is_owner_only(stack, alice):
    sub = await _create(stack, alice)
    assert sub["id"].startswith("sub_") and sub["status"] == "active"
    assert sub["identity_id"] == "user:alice@acme.example"
    assert sub["delivery"] == {"type": "polling", "buffer_size": 1000} and sub["dropped_events"] == 0
    sid = sub["id"]
    bob = bearer(await user_token(stack.scaikey, "bob@acme.example", scope=SCOPES))
    for method, url in (("GET", f"/v1/subscriptions/{sid}"), ("GET", f"/v1/subscriptions/{sid}/poll?timeout=0"),
                        ("DELETE", f"/v1/subscriptions/{sid}")):
        r = await stack.api.request(method, url, headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"] == "subscription_not_found"
    assert (await stack.api.get("/v1/subscriptions", headers=bob)).json()["subscriptions"] == []
    mine = (await stack.api.get("/v1/subscriptions", headers=alice)).json()
    assert [s["id"] for s in mine["subscriptions"]] == [sid]

    r = await stack.api.patch(f"/v1/subscriptions/{sid}", json={"paths": ["prod/db/*"], "events": ["secret.rotated"]},
                              headers=alice)
    assert r.status_code == 200 and r.json()["paths"] == ["prod/db/*"] and r.json()["events"] == ["secret.rotated"]
    assert (await stack.api.delete(f"/v1/subscriptions/{sid}", headers=alice)).status_code == 204
    assert (await stack.api.get(f"/v1/subscriptions/{sid}", headers=alice)).status_code == 404


async def test_patch_is_read_back_and_a_refused_patch_changes_nothing(stack, alice):
    sub = await _create(stack, alice, filters={"path_prefix": "prod/"})
    sid = sub["id"]

    async def read() -> dict:
        one = await stack.api.get(f"/v1/subscriptions/{sid}", headers=alice)
        assert one.status_code == 200, one.text
        listed = (await stack.api.get("/v1/subscriptions", headers=alice)).json()["subscriptions"]
        assert [s["id"] for s in listed] == [sid]
        # the list shows what GET shows (only GET adds the buffer's depth, docs/events.md)
        assert listed[0] == {k: v for k, v in one.json().items() if k != "buffered_events"}
        return one.json()

    def without(body: dict, *keys: str) -> dict:
        return {k: v for k, v in body.items() if k not in (*keys, "updated_at")}

    before = await read()
    r = await stack.api.patch(f"/v1/subscriptions/{sid}", json={"paths": ["prod/db/*"], "events": ["secret.rotated"]},
                              headers=alice)
    assert r.status_code == 200, r.text
    after = await read()
    assert after["paths"] == ["prod/db/*"] and after["events"] == ["secret.rotated"]
    assert without(after, "paths", "events") == without(before, "paths", "events")  # name, filters, delivery...
    assert without(r.json()) == without(after, "buffered_events")  # the PATCH answer is what is stored

    r = await stack.api.patch(f"/v1/subscriptions/{sid}", json={"name": "renamed"}, headers=alice)
    assert r.status_code == 200, r.text
    renamed = await read()
    assert renamed["name"] == "renamed" and without(renamed, "name") == without(after, "name")

    for body, status, code in (
        ({"name": "bad", "paths": ["Prod/**"]}, 400, "invalid_glob"),
        ({"name": "bad", "events": ["secret.rotated", "nope.thing"]}, 400, "invalid_event_type"),
        ({"name": "bad", "delivery": {"type": "webhook"}}, 422, "validation_error"),
        ({"name": "bad", "paths": []}, 422, "validation_error"),
        ({"name": "bad", "owner": "user:bob@acme.example"}, 422, "validation_error"),
    ):
        r = await stack.api.patch(f"/v1/subscriptions/{sid}", json=body, headers=alice)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        assert await read() == renamed, body  # nothing changed, not even the valid name in the same body


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"paths": ["Prod/**"]}, 400, "invalid_glob"),
    ({"paths": ["/abs"]}, 400, "invalid_glob"),
    ({"events": ["nope.thing"]}, 400, "invalid_event_type"),
    ({"delivery": {"type": "webhook"}}, 422, "validation_error"),
    ({"delivery": {"type": "carrier-pigeon"}}, 422, "validation_error"),
])
async def test_create_validation(stack, alice, body, status, code):
    full = {"name": "feed", "paths": ["prod/**"], "events": ["secret.*"], "delivery": {"type": "polling"}, **body}
    r = await stack.api.post("/v1/subscriptions", json=full, headers=alice)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize("bad", ["evt_\x00x", "evt_\ud800", "\u00e4", "evt x", "", "e" * 65])
async def test_malformed_event_ids_are_a_422_not_a_500(stack, alice, bad):
    """Found by schemathesis: a NUL or unpaired surrogate in ack's event_ids reached PostgreSQL (500)."""
    sub = await _create(stack, alice)
    body = json.dumps({"event_ids": ["evt_ok", bad]})  # a lone surrogate stays a \\ud800 escape
    r = await stack.api.post(f"/v1/subscriptions/{sub['id']}/ack", content=body, headers={
        **alice, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    if bad and "\ud800" not in bad:  # a lone surrogate cannot be put in a URL at all
        r = await stack.api.get(f"/v1/subscriptions/{sub['id']}/poll",
                                params={"timeout": 0, "since_event_id": bad}, headers=alice)
        assert r.status_code == 422, r.text
    # well-formed ids still work (unknown ones are simply not counted)
    r = await stack.api.post(f"/v1/subscriptions/{sub['id']}/ack", json={"event_ids": ["evt_nope"]}, headers=alice)
    assert r.status_code == 200, r.text


async def test_scopes_are_required(stack):
    token = bearer(await user_token(stack.scaikey, "carol@acme.example", scope="subscriptions:read"))
    r = await stack.api.post("/v1/subscriptions", json={"name": "x", "paths": ["a"], "events": ["*"],
                                                        "delivery": {"type": "polling"}}, headers=token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


async def test_poll_ack_and_redelivery(stack, alice, worker_process):
    sub = await _create(stack, alice)
    sid = sub["id"]
    assert await _poll(stack, alice, sid, timeout=0) == {"events": [], "has_more": False}
    worker_process(stack.settings)
    await stack.emit("secret.created", path="dev/app/db")          # path not subscribed
    await stack.emit("policy.created", path=None, data={})          # type not subscribed
    first = (await stack.emit("secret.created", path="prod/app/db"))[0]
    second = (await stack.emit("secret.rotated", path="prod/app/api"))[0]

    async def both():
        body = await _poll(stack, alice, sid, timeout=5)
        return body if len(body["events"]) == 2 else None

    body = await wait_for(both, what="two buffered events")
    assert [e["event_id"] for e in body["events"]] == [first, second]
    assert body["events"][0]["event_type"] == "secret.created" and body["events"][0]["path"] == "prod/app/db"
    assert body["has_more"] is False
    # not acked -> delivered again; since_event_id skips what the client already has
    again = await _poll(stack, alice, sid, timeout=0)
    assert [e["event_id"] for e in again["events"]] == [first, second]
    after = await _poll(stack, alice, sid, timeout=0, since_event_id=first)
    assert [e["event_id"] for e in after["events"]] == [second]
    limited = await _poll(stack, alice, sid, timeout=0, max_events=1)
    assert [e["event_id"] for e in limited["events"]] == [first] and limited["has_more"] is True

    r = await stack.api.post(f"/v1/subscriptions/{sid}/ack", json={"event_ids": [first]}, headers=alice)
    assert r.status_code == 200 and r.json() == {"acknowledged": 1}
    assert [e["event_id"] for e in (await _poll(stack, alice, sid, timeout=0))["events"]] == [second]
    await stack.api.post(f"/v1/subscriptions/{sid}/ack", json={"event_ids": [second]}, headers=alice)
    assert (await _poll(stack, alice, sid, timeout=0))["events"] == []


async def test_long_poll_wakes_when_an_event_lands(stack, alice, worker_process):
    sub = await _create(stack, alice)
    worker_process(stack.settings)
    poll = asyncio.create_task(_poll(stack, alice, sub["id"], timeout=60))
    await asyncio.sleep(0.5)
    assert not poll.done()  # blocks while the buffer is empty
    [evt] = await stack.emit("secret.created", path="prod/web/key")
    body = await asyncio.wait_for(poll, timeout=55)  # well before the poll's own 60 s timeout
    assert [e["event_id"] for e in body["events"]] == [evt]


async def test_buffer_overflow_drops_oldest_and_counts(stack, alice, worker_process):
    sub = await _create(stack, alice, delivery={"type": "polling", "buffer_size": 3})
    worker_process(stack.settings)
    ids = await stack.emit("secret.created", path="prod/app/db", count=5)

    async def dispatched():
        rows = await stack.sql("SELECT count(*) AS n FROM events WHERE dispatched_at IS NULL")
        return rows[0]["n"] == 0

    await wait_for(dispatched, what="outbox drained")
    body = await _poll(stack, alice, sub["id"], timeout=0)
    assert [e["event_id"] for e in body["events"]] == ids[2:]
    got = (await stack.api.get(f"/v1/subscriptions/{sub['id']}", headers=alice)).json()
    assert got["dropped_events"] == 2 and got["buffered_events"] == 3


async def test_webhook_subscription_delivers_signed(stack, alice, worker_process, receiver_factory, hook_secret):
    rx = receiver_factory([hook_secret])
    sub = await _create(stack, alice, paths=["prod/db/*"], events=["secret.rotated"],
                        delivery={"type": "webhook", "url": rx.url, "secret": hook_secret})
    assert sub["delivery"]["type"] == "webhook" and sub["delivery"]["url"] == rx.url
    assert "secret" not in sub["delivery"]
    r = await stack.api.get(f"/v1/subscriptions/{sub['id']}/poll", params={"timeout": 0}, headers=alice)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    hooks = (await stack.api.get("/v1/webhooks", headers=stack.admin)).json()["webhooks"]
    assert hooks == []  # a subscription's internal webhook is not listed as a webhook
    worker_process(stack.settings)
    await stack.emit("secret.rotated", path="prod/app/db")
    [evt] = await stack.emit("secret.rotated", path="prod/db/main")

    await wait_for(lambda: rx.successes(), what="subscription webhook delivery")
    [got] = rx.successes()
    assert got.verified and got.event["event_id"] == evt
