"""Webhook CRUD, validation, SSRF refusals and signing-secret rotation through the HTTP API."""

from __future__ import annotations

import pytest

from clients.webhook_verify import VerificationError, verify
from tests.helpers import CI, bearer, client_token


async def test_crud_never_returns_the_secret(stack, hook_secret):
    hook = await stack.create_webhook("https://93.184.215.14/sv", hook_secret, name="ops",
                                      filters={"path_prefix": "prod/", "tags": ["pci"]})
    assert hook["id"].startswith("wh_") and hook["status"] == "healthy" and hook["enabled"] is True
    assert hook["filters"] == {"path_prefix": "prod/", "tags": ["pci"]}
    assert hook["created_at"].endswith("Z")
    wid = hook["id"]

    got = (await stack.api.get(f"/v1/webhooks/{wid}", headers=stack.admin)).json()
    assert got["statistics"] == {"deliveries_24h": 0, "success_rate_24h": None, "avg_latency_ms": None}
    assert got["last_delivery"] is None
    listed = (await stack.api.get("/v1/webhooks", headers=stack.admin)).json()
    assert [w["id"] for w in listed["webhooks"]] == [wid] and listed["has_more"] is False
    assert listed["cursor"] is None

    r = await stack.api.patch(f"/v1/webhooks/{wid}", json={"name": "ops-2", "events": ["*"], "enabled": False},
                              headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "ops-2" and r.json()["events"] == ["*"] and r.json()["status"] == "disabled"
    # read the change back: GET and the list show it; fields the PATCH did not name are unchanged
    again = (await stack.api.get(f"/v1/webhooks/{wid}", headers=stack.admin)).json()
    listed_again = (await stack.api.get("/v1/webhooks", headers=stack.admin)).json()["webhooks"]
    for view in (again, listed_again[0]):
        assert (view["name"], view["events"], view["enabled"], view["status"]) == ("ops-2", ["*"], False, "disabled")
        assert view["url"] == "https://93.184.215.14/sv"
        assert view["filters"] == {"path_prefix": "prod/", "tags": ["pci"]}

    for body in (hook, got, listed["webhooks"][0], r.json()):
        assert "secret" not in body and hook_secret not in str(body)
    rows = await stack.sql("SELECT secret_enc FROM webhooks WHERE id = $1", wid)
    assert hook_secret.encode() not in bytes(rows[0]["secret_enc"])  # sealed at rest

    assert (await stack.api.delete(f"/v1/webhooks/{wid}", headers=stack.admin)).status_code == 204
    r = await stack.api.get(f"/v1/webhooks/{wid}", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found"
    r = await stack.api.delete(f"/v1/webhooks/{wid}", headers=stack.admin)
    assert r.status_code == 404


async def test_pagination_cursor(stack, hook_secret):
    ids = [(await stack.create_webhook("https://93.184.215.14/x", hook_secret, name=f"h{i}"))["id"]
           for i in range(3)]
    page1 = (await stack.api.get("/v1/webhooks", params={"limit": 2}, headers=stack.admin)).json()
    assert page1["has_more"] is True and len(page1["webhooks"]) == 2
    page2 = (await stack.api.get("/v1/webhooks", params={"limit": 2, "cursor": page1["cursor"]},
                                 headers=stack.admin)).json()
    assert page2["has_more"] is False and page2["cursor"] is None
    assert [w["id"] for w in page1["webhooks"] + page2["webhooks"]] == sorted(ids)
    r = await stack.api.get("/v1/webhooks", params={"cursor": "!!!"}, headers=stack.admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"events": ["secret.nope"]}, 400, "invalid_event_type"),
    ({"events": ["bogus.*"]}, 400, "invalid_event_type"),
    ({"events": []}, 422, "validation_error"),
    ({"secret": "short"}, 422, "validation_error"),
    ({"filters": {"unknown": 1}}, 422, "validation_error"),
    ({"url": "ftp://hooks.example.com/"}, 400, "invalid_url"),
])
async def test_create_validation(stack, hook_secret, body, status, code):
    full = {"name": "x", "url": "https://93.184.215.14/", "secret": hook_secret, "events": ["secret.*"], **body}
    r = await stack.api.post("/v1/webhooks", json=full, headers=stack.admin)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


async def test_needs_admin_scope(stack, hook_secret):
    token = await client_token(stack.scaikey, CI)
    r = await stack.api.get("/v1/webhooks", headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize(("url", "reason"), [
    ("http://hooks.example.com/", "scheme"),
    ("https://127.0.0.1/", "loopback"),
    ("https://localhost:8443/x", "loopback"),
    ("https://10.1.2.3/", "private"),
    ("https://192.168.0.10/", "private"),
    ("https://169.254.169.254/latest/meta-data", "link_local"),
    ("https://[::1]/", "loopback"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://[fe80::1]/", "link_local"),
    ("https://224.0.0.1/", "multicast"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://100.64.0.1/", "non_global"),
    ("https://user:pw@hooks.example.com/", "credentials"),
    ("https://no-such-host.invalid/", "unresolvable"),
])
async def test_ssrf_refusals_when_private_targets_are_not_allowed(stack_factory, hook_secret, url, reason):
    stack = await stack_factory(webhook_allow_private=False)
    r = await stack.api.post("/v1/webhooks", json={"name": "x", "url": url, "secret": hook_secret,
                                                   "events": ["*"]}, headers=stack.admin)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_url" and err["details"]["reason"] == reason


async def test_ssrf_check_applies_to_updates(stack_factory, hook_secret):
    stack = await stack_factory(webhook_allow_private=False)
    hook = await stack.create_webhook("https://93.184.215.14/hook", hook_secret)
    r = await stack.api.patch(f"/v1/webhooks/{hook['id']}", json={"url": "https://10.0.0.5/"}, headers=stack.admin)
    assert r.status_code == 400 and r.json()["error"]["details"]["reason"] == "private"
    got = (await stack.api.get(f"/v1/webhooks/{hook['id']}", headers=stack.admin)).json()
    assert got["url"] == "https://93.184.215.14/hook"  # the refused update changed nothing


async def test_delivery_time_check_refuses_private_addresses(event_settings):
    """DNS rebinding: a name that was public at create time but now resolves privately is refused at send."""
    from services.events.webhook_sender import WebhookSender

    sender = WebhookSender(event_settings(webhook_allow_private=False))
    try:
        res = await sender.send("https://localhost:9/x", "s" * 32, b"{}", event_id="evt_1", event_type="secret.created")
    finally:
        await sender.aclose()
    assert not res.ok and res.response_code is None and res.error == "url refused: loopback"


async def test_secret_rotation_keeps_previous_for_receivers(stack, receiver_factory, hook_secret):
    old, new = hook_secret, "new-" + hook_secret
    rx = receiver_factory([new])
    hook = await stack.create_webhook(rx.url, old)
    r = await stack.api.patch(f"/v1/webhooks/{hook['id']}", json={"secret": new, "previous_secret_ttl": "24h"},
                              headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json()["previous_secret_expires_at"].endswith("Z")
    rows = await stack.sql("SELECT previous_secret_enc IS NOT NULL AS kept FROM webhooks WHERE id = $1", hook["id"])
    assert rows[0]["kept"] is True

    res = (await stack.api.post(f"/v1/webhooks/{hook['id']}/test", headers=stack.admin)).json()
    assert res["status"] == "success"
    [got] = rx.snapshot()
    verify(got.body, got.headers, [new])            # signed with the new secret
    verify(got.body, got.headers, [new, old])       # a receiver holding both accepts it
    with pytest.raises(VerificationError):
        verify(got.body, got.headers, [old])        # never with the old one

    r = await stack.api.patch(f"/v1/webhooks/{hook['id']}", json={"previous_secret_ttl": "1h"}, headers=stack.admin)
    assert r.status_code == 422
    r = await stack.api.patch(f"/v1/webhooks/{hook['id']}", json={"secret": old, "previous_secret_ttl": "soon"},
                              headers=stack.admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_duration"
    r = await stack.api.patch(f"/v1/webhooks/{hook['id']}", json={"secret": "x" * 40}, headers=stack.admin)
    assert r.status_code == 200, r.text
    assert "previous_secret_expires_at" not in r.json()  # no TTL: the old secret is dropped at once
    rows = await stack.sql("SELECT previous_secret_enc IS NOT NULL AS kept FROM webhooks WHERE id = $1", hook["id"])
    assert rows[0]["kept"] is False
