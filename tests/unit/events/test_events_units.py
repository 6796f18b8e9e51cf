"""Pure parts of events: receiver verification, URL refusal table, catalogue and matching, retry schedule,
secret sealing."""

from __future__ import annotations

import ipaddress

import pytest

from clients.webhook_verify import VerificationError, sign, verify
from core.errors import AppError
from services.events import webhook_urls
from services.events.catalogue import filters_match, type_matches, validate_event_types
from services.events.relay import paths_match, retry_delays_ms

BODY = b'{"event_id":"evt_1","event_type":"secret.created"}'


def _headers(secret: str, ts: int, body: bytes = BODY) -> dict[str, str]:
    return {"X-ScaiVault-Timestamp": str(ts), "X-ScaiVault-Signature": sign(secret, ts, body)}


def test_signature_is_hmac_of_timestamp_dot_raw_body():
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 32, b"1714478400." + BODY, hashlib.sha256).hexdigest()
    assert sign("k" * 32, 1714478400, BODY) == "sha256=" + expected


@pytest.mark.parametrize(("mutate", "status"), [
    (lambda h, b: (h, b + b" "), 401),                                       # body changed by one byte
    (lambda h, b: ({**h, "X-ScaiVault-Timestamp": "1714478401"}, b), 401),  # timestamp not the signed one
    (lambda h, b: ({k: v for k, v in h.items() if "Timestamp" not in k}, b), 400),
    (lambda h, b: ({**h, "X-ScaiVault-Signature": "md5=abc"}, b), 400),
    (lambda h, b: ({**h, "X-ScaiVault-Timestamp": "soon"}, b), 400),
])
def test_verify_rejects(mutate, status):
    headers, body = mutate(_headers("s" * 32, 1714478400), BODY)
    with pytest.raises(VerificationError) as exc:
        verify(body, headers, ["s" * 32], now=1714478400)
    assert exc.value.status == status


def test_verify_tolerance_and_previous_secret():
    h = _headers("old-secret-0123456789abcdef", 1000)
    verify(BODY, {k.lower(): v for k, v in h.items()}, ["new", "old-secret-0123456789abcdef"], now=1299)
    with pytest.raises(VerificationError) as exc:
        verify(BODY, h, ["old-secret-0123456789abcdef"], now=1301)
    assert exc.value.status == 401
    with pytest.raises(VerificationError):
        verify(BODY, h, ["new-only"], now=1000)


@pytest.mark.parametrize(("ip", "reason"), [
    ("8.8.8.8", None), ("2606:4700::1111", None), ("127.0.0.2", "loopback"), ("10.0.0.1", "private"),
    ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link_local"),
    ("100.64.1.1", "non_global"), ("224.0.0.251", "multicast"), ("0.0.0.0", "unspecified"),
    ("240.0.0.1", "reserved"), ("::1", "loopback"), ("fc00::1", "private"), ("fe80::1", "link_local"),
    ("::ffff:10.0.0.1", "private"), ("198.51.100.7", "private"),
])
def test_refusal_reasons(ip, reason):
    assert webhook_urls.refusal_reason(ipaddress.ip_address(ip)) == reason


def test_url_parse_rules():
    t = webhook_urls.parse("https://hooks.example.com:8443/a?b=1", allow_private=False)
    assert (t.host, t.port, t.path) == ("hooks.example.com", 8443, "/a?b=1")
    assert webhook_urls.parse("http://10.0.0.1/x", allow_private=True).scheme == "http"
    for url, reason in [("http://hooks.example.com/", "scheme"), ("gopher://x/", "scheme"),
                        ("https://u:p@x.example/", "credentials"), ("https:///nohost", "malformed"),
                        ("https://x.example:99999/", "malformed"), ("https://x/" + "a" * 3000, "length")]:
        with pytest.raises(AppError) as exc:
            webhook_urls.parse(url, allow_private=False)
        assert exc.value.code == "invalid_url" and exc.value.details["reason"] == reason


def test_event_type_validation_and_matching():
    assert validate_event_types(["secret.*", "policy.created", "*", "secret.*"]) == ["secret.*", "policy.created", "*"]
    for bad in (["secret.nope"], ["nope.*"], ["secret"], ["**"]):
        with pytest.raises(AppError) as exc:
            validate_event_types(bad)
        assert exc.value.code == "invalid_event_type"
    assert type_matches(["secret.*"], "secret.rotated")
    assert not type_matches(["secret.*"], "policy.binding.created")
    assert type_matches(["policy.*"], "policy.binding.created")
    assert type_matches(["*"], "certificate.issued")
    assert not type_matches(["secret.created"], "secret.updated")


def test_filters_match():
    ev = {"path": "prod/app/db", "data": {"secret_type": "json", "tags": ["pci", "db"]}}
    assert filters_match({}, ev)
    assert filters_match({"path_prefix": "prod/", "secret_type": "json", "tags": ["pci"]}, ev)
    assert not filters_match({"path_prefix": "dev/"}, ev)
    assert not filters_match({"path_prefix": "prod/"}, {"data": {}})  # path-less events never match a prefix
    assert filters_match({"secret_type": ["text", "json"]}, ev)
    assert not filters_match({"tags": ["pci", "gdpr"]}, ev)
    assert filters_match({"tags": {"env": "prod"}}, {"data": {"tags": {"env": "prod", "team": "a"}}})


def test_paths_match_uses_policy_globs():
    assert paths_match(None, None)
    assert paths_match(["prod/**"], "prod/a/b") and not paths_match(["prod/**"], "dev/a")
    assert paths_match(["prod/db-*"], "prod/db-main") and not paths_match(["prod/db-*"], "prod/cache")
    assert not paths_match(["prod/**"], None) and paths_match(["**"], None)


def test_retry_schedule_parsing():
    assert retry_delays_ms("1m,5m,30m,2h,12h,24h") == [60_000, 300_000, 1_800_000, 7_200_000, 43_200_000,
                                                      86_400_000]
    assert retry_delays_ms("200ms, 1.5s") == [200, 1500]
    assert retry_delays_ms("") == []
    with pytest.raises(ValueError):
        retry_delays_ms("5 minutes")


def test_secret_box_binds_tenant_and_webhook(settings_env_free):
    from services.events.webhook_secrets import SecretBox

    box = SecretBox(settings_env_free)
    blob = box.seal("tnt_a", "wh_1", "the-secret-0123456789")
    assert b"the-secret" not in blob and "the-secret" not in repr(box)
    assert box.open("tnt_a", "wh_1", blob) == "the-secret-0123456789"
    from crypto.errors import DecryptError

    with pytest.raises(DecryptError):
        box.open("tnt_b", "wh_1", blob)


@pytest.fixture
def settings_env_free():
    from core.settings import Settings

    return Settings(env="dev")
