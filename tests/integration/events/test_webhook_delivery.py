"""Webhook delivery end to end: outbox -> relay -> delivery workflow (real Temporal, worker subprocess) ->
a real receiver that verifies signatures on the raw bytes."""

from __future__ import annotations

import orjson

from clients.webhook_verify import USER_AGENT, VerificationError, verify
from tests.webhook_receiver import wait_for


async def _deliveries(stack, wh_id, **params):
    r = await stack.api.get(f"/v1/webhooks/{wh_id}/deliveries", params=params, headers=stack.admin)
    assert r.status_code == 200, r.text
    return r.json()


async def test_event_is_delivered_signed_with_documented_headers(stack, worker_process, receiver_factory, hook_secret):
    rx = receiver_factory([hook_secret])
    hook = await stack.create_webhook(rx.url, hook_secret)
    worker_process(stack.settings)
    [event_id] = await stack.emit("secret.created", path="apps/web/db", data={"version": 1, "secret_type": "json"})

    await wait_for(lambda: rx.successes(), what="a delivery")
    got = rx.successes()[0]
    assert got.verified, got.verify_error
    h = {k.lower(): v for k, v in got.headers.items()}
    assert h["x-scaivault-event-id"] == event_id
    assert h["x-scaivault-event-type"] == "secret.created"
    assert h["user-agent"] == USER_AGENT
    assert h["x-scaivault-signature"].startswith("sha256=")
    env = orjson.loads(got.body)
    assert env["event_id"] == event_id and env["path"] == "apps/web/db"
    assert env["tenant_id"] == "tnt_acme_prod" and env["data"] == {"version": 1, "secret_type": "json"}
    assert env["timestamp"].endswith("Z")
    # any other key fails verification of the same raw bytes
    try:
        verify(got.body, got.headers, ["some-other-secret-0123456789abcdef"])
        raise AssertionError("a wrong secret verified")
    except VerificationError as exc:
        assert exc.status == 401

    body = await wait_for(lambda: _deliveries_success(stack, hook["id"]), what="delivery log success")
    [d] = body["deliveries"]
    assert d["event_id"] == event_id and d["attempts"] == 1 and d["response_code"] == 200
    assert len(rx.snapshot()) == 1  # exactly one POST, the one verified above
    assert d["duration_ms"] is not None and d["error"] is None
    # the delivery is a background action in the audit log, as system:webhook-dispatcher
    logs = (await stack.api.get("/v1/audit/logs?action=webhook_delivery", headers=stack.admin)).json()["logs"]
    assert [(e["identity_id"], e["resource_id"], e["success"]) for e in logs] == [
        ("system:webhook-dispatcher", hook["id"], True)]


async def _deliveries_success(stack, wh_id):
    body = await _deliveries(stack, wh_id, status="success")
    return body if body["deliveries"] else None


async def test_receiver_failing_three_times_then_recovering_gets_one_success(
        stack, worker_process, receiver_factory, hook_secret):
    rx = receiver_factory([hook_secret], fail_first=3)
    hook = await stack.create_webhook(rx.url, hook_secret)
    worker_process(stack.settings)
    [event_id] = await stack.emit()

    body = await wait_for(lambda: _deliveries_success(stack, hook["id"]), what="success after retries")
    [d] = body["deliveries"]
    assert d["event_id"] == event_id
    assert d["attempts"] == 4 and d["status"] == "success" and d["next_attempt_at"] is None
    seen = rx.snapshot()
    assert [r.status for r in seen] == [500, 500, 500, 200]
    assert all(r.verified for r in seen)  # every attempt re-signed with a fresh timestamp
    assert {r.event["event_id"] for r in seen} == {event_id}
    assert len({r.body for r in seen}) == 1  # same bytes every attempt
    all_rows = (await _deliveries(stack, hook["id"]))["deliveries"]
    assert len(all_rows) == 1


async def test_dead_letter_then_redeliver(stack_factory, worker_process, receiver_factory, hook_secret):
    stack = await stack_factory(webhook_retry_schedule="200ms,200ms", webhook_degraded_after=2,
                                webhook_failing_after=10)
    rx = receiver_factory([hook_secret])
    rx.always_fail = True
    hook = await stack.create_webhook(rx.url, hook_secret)
    worker_process(stack.settings)
    [event_id] = await stack.emit()

    async def dead():
        body = await _deliveries(stack, hook["id"], status="failed")
        return body["deliveries"]

    [d] = await wait_for(dead, what="dead letter")
    assert d["attempts"] == 3 and d["response_code"] == 500 and d["error"] == "HTTP 500"
    assert d["response_body"] == '{"ok": false}'
    wh = (await stack.api.get(f"/v1/webhooks/{hook['id']}", headers=stack.admin)).json()
    assert wh["status"] == "failing"  # a dead letter marks the webhook failing
    assert wh["last_delivery"]["status"] == "failed"

    rx.always_fail = False
    r = await stack.api.post(f"/v1/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver", headers=stack.admin)
    assert r.status_code == 202, r.text
    assert r.json() == {"delivery_id": d["id"], "event_id": event_id, "status": "pending"}
    body = await wait_for(lambda: _deliveries_success(stack, hook["id"]), what="redelivered")
    assert body["deliveries"][0]["id"] == d["id"] and body["deliveries"][0]["attempts"] == 4
    assert [r.status for r in rx.snapshot()] == [500, 500, 500, 200]  # the receiver saw exactly those 4
    wh = (await stack.api.get(f"/v1/webhooks/{hook['id']}", headers=stack.admin)).json()
    assert wh["status"] == "healthy"
    assert wh["statistics"]["deliveries_24h"] == 1 and wh["statistics"]["success_rate_24h"] == 1.0

    r = await stack.api.post(f"/v1/webhooks/{hook['id']}/deliveries/del_nope/redeliver", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "delivery_not_found"


async def test_filters_and_event_types_select_events(stack, worker_process, receiver_factory, hook_secret):
    rx = receiver_factory([hook_secret])
    hook = await stack.create_webhook(rx.url, hook_secret, events=["secret.created", "policy.*"],
                                      filters={"path_prefix": "prod/", "secret_type": "json"})
    await stack.emit("secret.created", path="dev/app/db")                       # path outside prefix
    await stack.emit("secret.updated", path="prod/app/db")                      # type not selected
    await stack.emit("secret.created", path="prod/app/db", data={"secret_type": "text"})  # wrong type
    [wanted] = await stack.emit("secret.created", path="prod/app/db")
    worker_process(stack.settings)

    await wait_for(lambda: rx.successes(), what="the matching event")

    async def all_dispatched():
        rows = await stack.sql("SELECT count(*) AS n FROM events WHERE dispatched_at IS NULL")
        return rows[0]["n"] == 0

    await wait_for(all_dispatched, what="outbox drained")
    rows = await stack.sql("SELECT event_id FROM webhook_deliveries WHERE webhook_id = $1", hook["id"])
    assert [r["event_id"] for r in rows] == [wanted]
    await wait_for(lambda: _deliveries_success(stack, hook["id"]), what="the delivery logged")
    assert [r.event["event_id"] for r in rx.snapshot()] == [wanted]  # nothing else reached the receiver


async def test_disabled_webhook_receives_nothing_and_test_send_reports(stack, worker_process, receiver_factory,
                                                                       hook_secret):
    rx = receiver_factory([hook_secret])
    hook = await stack.create_webhook(rx.url, hook_secret, enabled=False)
    assert hook["status"] == "disabled"
    r = await stack.api.post(f"/v1/webhooks/{hook['id']}/test", headers=stack.admin)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["status"] == "success" and res["response_code"] == 200 and res["delivery_id"].startswith("del_")
    [got] = rx.snapshot()
    assert got.verified and got.event["event_type"] == "webhook.test"

    rx.always_fail = True
    res = (await stack.api.post(f"/v1/webhooks/{hook['id']}/test", headers=stack.admin)).json()
    assert res["status"] == "failed" and res["response_code"] == 500
    log = await _deliveries(stack, hook["id"])
    assert [d["status"] for d in log["deliveries"]] == ["failed", "success"]  # newest first
