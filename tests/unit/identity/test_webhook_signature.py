"""Signature verification and envelope normalisation of the ScaiKey webhook receiver (pure functions)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from core.errors import AppError
from core.settings import Settings
from services.identity.webhooks import normalize, verify

SECRET = "whsec_unit"
BODY = b'{"event_id":"evt_1","event_type":"user.updated"}'
NOW = 1_750_000_000


def _settings(secret: str = SECRET) -> Settings:
    return Settings(env="dev", scaikey_webhook_secret=SecretStr(secret))


def _sig(ts: int, body: bytes = BODY, secret: str = SECRET) -> str:
    return "t={},v1={}".format(ts, hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest())


def test_valid_signature_passes() -> None:
    verify(_settings(), BODY, _sig(NOW), None, now=NOW + 299)


@pytest.mark.parametrize(("secret", "header", "ts_header", "now", "code"), [
    ("", _sig(NOW), None, NOW, "webhook_secret_not_configured"),
    (SECRET, None, None, NOW, "invalid_signature"),
    (SECRET, _sig(NOW), None, NOW + 301, "invalid_signature"),
    (SECRET, _sig(NOW), None, NOW - 301, "invalid_signature"),
    (SECRET, _sig(NOW, secret="other"), None, NOW, "invalid_signature"),
    (SECRET, _sig(NOW, body=BODY + b" "), None, NOW, "invalid_signature"),
    (SECRET, "garbage", None, NOW, "invalid_request"),
    (SECRET, "t=abc,v1=00", None, NOW, "invalid_request"),
    (SECRET, "t=123", None, NOW, "invalid_request"),
    (SECRET, _sig(NOW).split(",")[1], None, NOW, "invalid_request"),
])
def test_rejections(secret: str, header: str | None, ts_header: str | None, now: int, code: str) -> None:
    with pytest.raises(AppError) as err:
        verify(_settings(secret), BODY, header, ts_header, now=now)
    assert err.value.code == code


def test_timestamp_header_is_used_when_the_signature_has_none() -> None:
    v1 = _sig(NOW).split(",")[1]
    verify(_settings(), BODY, v1, str(NOW), now=NOW)


def test_both_envelopes_normalise_to_the_same_event() -> None:
    scaikey = normalize({"event_id": "evt_1", "event_type": "group.member_added", "tenant_id": "tnt_a",
                         "resource": {"type": "group", "id": "grp_x"}, "data": {"user_id": "usr_1"}}, {})
    scaiflow = normalize({"id": "evt_1", "type": "group_membership.added", "created_at": "2025-01-01T00:00:00Z",
                          "data": {"user_id": "usr_1", "group_id": "grp_x", "tenant_id": "tnt_a"}}, {})
    for ev in (scaikey, scaiflow):
        assert (ev.event_id, ev.event_type, ev.tenant_id) == ("evt_1", "group.member_added", "tnt_a")
    with pytest.raises(AppError):
        normalize({"data": {}}, {})
