"""Webhook emitter: signed deliveries verified by a local receiver on the raw bytes; breakage; retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from tests.emulator.conftest import Received, Receiver, Running

SECRET = "whsec_test_secret"


def verify(rec: Received, secret: str = SECRET, window: int = 300) -> bool:
    """What ScaiVault's receiver does: parse t/v1, freshness window, constant-time compare on raw body."""
    header = rec.headers.get("x-scaikey-signature")
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or abs(time.time() - int(parts["t"])) > window:
        return False
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + rec.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def subscribe(emu: Running, receiver: Receiver, **extra: object) -> dict:
    token = emu.cc_token("scaivault")
    resp = emu.client.post("/api/v1/admin/webhooks/", json={"url": receiver.url, "secret": SECRET, **extra},
                           headers=emu.bearer(token))  # fmt: skip
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_subscription_delivery_is_signed(emu: Running, receiver: Receiver) -> None:
    hook = subscribe(emu, receiver)
    assert hook["secret"] == SECRET and hook["id"]
    token = emu.cc_token("scaivault")
    emu.client.patch(
        "/api/v1/admin/users/usr_bob", json={"status": "SUSPENDED"}, headers=emu.bearer(token)
    ).raise_for_status()
    assert emu.client.post("/_emulator/webhooks/drain").json()["drained"] is True
    (rec,) = receiver.wait(1)
    assert verify(rec)
    body = rec.json()
    assert rec.body == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert body["event_type"] == "user.suspended" and body["data"]["status"] == "SUSPENDED"
    assert body["resource"] == {"type": "user", "id": "usr_bob"}
    assert body["tenant_id"] == "tnt_acme_prod" and body["partner_id"] == "prt_acme"
    assert body["event_id"].startswith("evt_")
    h = rec.headers
    assert h["x-scaikey-event-id"] == body["event_id"] and h["x-scaikey-event-type"] == "user.suspended"
    assert h["user-agent"] == "ScaiKey-Webhook/1.0" and h["content-type"] == "application/json"
    assert h["x-scaikey-webhook-id"].isdigit()
    assert h["x-scaikey-signature"].startswith(f"t={h['x-scaikey-timestamp']},v1=")
    assert not verify(rec, secret="other")


def test_event_filter_and_scaiflow_envelope(emu: Running, receiver: Receiver) -> None:
    subscribe(emu, receiver, events=["group.member_added"], envelope_style="scaiflow")
    token = emu.cc_token("scaivault")
    emu.client.patch(
        "/api/v1/admin/users/usr_bob", json={"first_name": "Robert"}, headers=emu.bearer(token)
    ).raise_for_status()
    emu.client.post("/api/v1/admin/groups/grp_platform_admins/members", json={"user_id": "usr_bob"},
                    headers=emu.bearer(token)).raise_for_status()  # fmt: skip
    emu.client.post("/_emulator/webhooks/drain").raise_for_status()
    (rec,) = receiver.wait(1)
    body = rec.json()
    assert verify(rec)
    assert body["type"] == "group_membership.added" and body["id"].startswith("evt_") and body["created_at"]
    assert body["data"]["user_id"] == "usr_bob" and body["data"]["group_id"] == "grp_platform_admins"
    assert body["data"]["tenant_id"] == "tnt_acme_prod"
    assert rec.headers["x-scaikey-event-type"] == "group.member_added"


def test_retries_until_success(emu: Running, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    hook = subscribe(emu, receiver)
    token = emu.cc_token("scaivault")
    emu.client.delete("/api/v1/admin/groups/grp_oncall", headers=emu.bearer(token)).raise_for_status()
    emu.client.post("/_emulator/webhooks/drain").raise_for_status()
    received = receiver.wait(3)
    assert len(received) == 3
    assert len({r.headers["x-scaikey-event-id"] for r in received}) == 1
    log = emu.client.get("/_emulator/webhooks/deliveries", params={"webhook_id": hook["id"]}).json()["items"]
    assert [(d["attempt"], d["status_code"], d["ok"]) for d in log] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]


def fire(emu: Running, receiver: Receiver, **extra: object) -> dict:
    body = {"url": receiver.url, "secret": SECRET, "event_type": "user.created", "tenant_id": "tnt_acme_prod",
            "data": {"id": "usr_new", "email": "new@acme.example"}, **extra}  # fmt: skip
    resp = emu.client.post("/_emulator/webhooks/fire", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_fire_valid_and_chosen_event_id(emu: Running, receiver: Receiver) -> None:
    result = fire(emu, receiver, event_id="evt_fixed")
    (rec,) = receiver.received
    assert verify(rec) and rec.json()["event_id"] == "evt_fixed"
    assert result["results"][0]["attempts"][0]["status_code"] == 200


@pytest.mark.parametrize("breakage", ["wrong_secret", "stale_timestamp", "tampered_body", "missing_signature",
                                      "missing_timestamp", "malformed_signature"])  # fmt: skip
def test_fire_breakage_fails_verification(emu: Running, receiver: Receiver, breakage: str) -> None:
    fire(emu, receiver, breakage=[breakage])
    (rec,) = receiver.received
    if breakage == "missing_timestamp":
        assert "x-scaikey-timestamp" not in rec.headers
    assert not verify(rec)


def test_fire_duplicate_and_reverse(emu: Running, receiver: Receiver) -> None:
    fire(emu, receiver, breakage=["duplicate"])
    first, second = receiver.received
    assert first.headers["x-scaikey-event-id"] == second.headers["x-scaikey-event-id"]
    assert verify(first) and verify(second)
    receiver.received.clear()
    fire(emu, receiver, reverse=True, events=[{"event_type": "user.created", "event_id": "evt_1"},
                                              {"event_type": "user.updated", "event_id": "evt_2"}])  # fmt: skip
    assert [r.json()["event_id"] for r in receiver.received] == ["evt_2", "evt_1"]


def test_global_breakage_setting_applies_to_subscriptions(emu: Running, receiver: Receiver) -> None:
    subscribe(emu, receiver)
    emu.client.post(
        "/_emulator/settings", json={"webhook_breakage": ["wrong_secret"], "webhook_retries": 0}
    ).raise_for_status()
    token = emu.cc_token("scaivault")
    emu.client.post("/api/v1/admin/users/usr_bob/suspend", headers=emu.bearer(token)).raise_for_status()
    emu.client.post("/_emulator/webhooks/drain").raise_for_status()
    (rec,) = receiver.wait(1)
    assert not verify(rec)


def test_tenant_suspension_event(emu: Running, receiver: Receiver) -> None:
    subscribe(emu, receiver, events=["tenant.updated"])
    token = emu.cc_token("scaivault")
    emu.client.patch("/api/v1/admin/tenants/tnt_acme_dev", json={"status": "SUSPENDED"},
                     headers=emu.bearer(token)).raise_for_status()  # fmt: skip
    emu.client.post("/_emulator/webhooks/drain").raise_for_status()
    (rec,) = receiver.wait(1)
    body = rec.json()
    assert verify(rec) and body["event_type"] == "tenant.updated"
    assert body["data"]["status"] == "SUSPENDED" and body["tenant_id"] == "tnt_acme_dev"
