"""ACME pure pieces: the renewal point, the CA's Retry-After kept on rate-limit errors (the acme library drops the
response), other CA errors left to the caller, names and zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests

from core.errors import AppError
from services.acme import client, common
from services.acme.orders import classify
from workflows.types.acme import renewal_point

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("lifetime", "renew_before", "early"), [
    (timedelta(days=90 * 4), None, timedelta(days=30)),     # long: not_after - 30d
    (timedelta(days=90), None, timedelta(days=30)),         # 90 days exactly: a third of it
    (timedelta(days=7), None, timedelta(days=7) / 3),       # the 7-day mTLS leaf: ~2.3 days early
    (timedelta(hours=2), None, timedelta(hours=1)),         # very short: at least 1 h early
    (timedelta(days=365), 86400.0, timedelta(days=1)),      # configured renew_before wins
])
def test_renewal_point(lifetime: timedelta, renew_before: float | None, early: timedelta) -> None:
    assert renewal_point(T0, T0 + lifetime, renew_before) == T0 + lifetime - early


def _response(status: int, body: dict, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = orjson.dumps(body)
    r.headers.update({"Content-Type": "application/problem+json", **headers})
    return r


def test_rate_limit_keeps_the_cas_retry_after() -> None:
    r = _response(429, {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many certificates"},
                  **{"Retry-After": "120"})
    with pytest.raises(client.AcmeFailure) as exc:
        client._Network._check_response(r)
    assert exc.value.code == "backend_rate_limited" and exc.value.retry_after == 120.0
    assert "too many certificates" in exc.value.message
    assert classify(exc.value) == ("backend_rate_limited", exc.value.message, 120.0)


def test_retry_after_as_an_http_date() -> None:
    when = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 500 < client._retry_after(when) <= 600  # type: ignore[operator]
    assert client._retry_after("garbage") is None and client._retry_after(None) is None


def test_other_ca_errors_are_not_rate_limits() -> None:
    from acme import messages

    r = _response(400, {"type": "urn:ietf:params:acme:error:malformed", "detail": "bad"})
    with pytest.raises(messages.Error):
        client._Network._check_response(r)


def test_classify_maps_known_failures() -> None:
    assert classify(AppError("dns_provider_error", "route53 UPSERT failed"))[0] == "dns_provider_error"
    assert classify(client.AcmeFailure("acme_challenge_failed", "x"))[0] == "acme_challenge_failed"
    assert classify(RuntimeError("boom")) == ("internal_error", "RuntimeError", None)


@pytest.mark.parametrize("name", ["acme.example", "*.acme.example", "a-b.c.example", "XN--bcher-kva.example"])
def test_good_names(name: str) -> None:
    assert common.check_domain(name) == name.lower()


@pytest.mark.parametrize("name", ["localhost", "1.2.3.4", "a..b", "-a.example", "*.*.example", "a b.example", "",
                                  "x" * 64 + ".example", 7])
def test_bad_names(name: object) -> None:
    with pytest.raises(AppError) as exc:
        common.check_domain(name)
    assert exc.value.code == "validation_error"


def test_zones() -> None:
    assert common.in_zone("*.acme.example", "acme.example") and common.in_zone("acme.example", "acme.example")
    assert common.in_zone("a.b.acme.example", "*.acme.example")
    assert not common.in_zone("evilacme.example", "acme.example")


@pytest.mark.parametrize(("creds", "needle"), [
    ({}, "server"),
    ({"server": "127.0.0.1:x", "tsig_key_name": "k", "tsig_secret": "c2VjcmV0"}, "port"),
    ({"server": "127.0.0.1:53"}, "tsig_key_name"),
    ({"server": "ns", "tsig_key_name": "k", "tsig_secret": "c2VjcmV0", "tsig_algorithm": "md5"}, "tsig_algorithm"),
    ({"server": "ns", "tsig_key_name": "k", "tsig_secret": "not base64 !!"}, "base64"),
])
def test_rfc2136_credentials_are_checked_without_echoing_the_secret(creds: dict, needle: str) -> None:
    from services.acme.dns import DnsError, adapter

    with pytest.raises(DnsError) as exc:
        adapter("rfc2136", creds, {"zones": ["rfc.example"]})
    assert needle in str(exc.value) and "not base64 !!" not in str(exc.value)


def test_find_pebble_says_how_to_install_when_it_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack import services as svc

    monkeypatch.setattr(svc.shutil, "which", lambda name: None)
    monkeypatch.setattr(svc.os, "access", lambda path, mode: False)
    with pytest.raises(svc.ServiceStartError) as exc:
        svc.find_pebble(install=False)
    assert "pebble, pebble-challtestsrv" in str(exc.value) and "apt-get install -y pebble" in str(exc.value)


def test_find_pebble_finds_the_debian_binaries() -> None:
    from devstack import services as svc

    found = svc.find_pebble()  # installs the Debian package when missing and running as root (make test)
    assert set(found) == {"pebble", "pebble-challtestsrv"}
