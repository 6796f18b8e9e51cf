"""Retry classes (core.md §8.3) through httpx.MockTransport: the only way to make a server answer 429, 500 or
503 on demand. Sleeps are recorded, not slept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from scaivault_sdk import (
    ConflictError,
    InternalError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ScaiVaultClient,
    ServiceUnavailableError,
    TransportError,
)


def _err(status: int, code: str, headers: dict[str, str] | None = None, **details: Any) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, json={"error": {
        "code": code, "message": code, "details": details, "request_id": "req_t"}})


def _client(answers: list[Callable[[httpx.Request], httpx.Response] | httpx.Response],
            seen: list[httpx.Request], slept: list[float]) -> ScaiVaultClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        a = answers.pop(0)
        return a(request) if callable(a) else a

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    c = ScaiVaultClient("http://vault.test", token="skt_x", transport=httpx.MockTransport(handler),
                        retry=RetryPolicy(max_retries=3, max_retry_after=30))
    c._transport._sleep = sleep
    return c


OK_SECRET = httpx.Response(200, json={"path": "a/b", "version": 1, "secret_type": "kv", "data": {"k": "v"}})


async def test_rate_limited_waits_retry_after_even_for_writes() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    async with _client([_err(429, "rate_limited", {"Retry-After": "7"}, retry_after=7),
                        httpx.Response(200, json={"path": "a/b", "version": 2})], seen, slept) as c:
        meta = await c.secrets.write("a/b", {"k": "v"})
    assert meta.version == 2 and len(seen) == 2 and slept == [7.0]


async def test_rate_limit_beyond_the_cap_is_raised_with_retry_after() -> None:
    seen: list[httpx.Request] = []
    async with _client([_err(429, "rate_limited", {"Retry-After": "120"})], seen, []) as c:
        with pytest.raises(RateLimitError) as err:
            await c.secrets.read("a/b")
    assert err.value.retry_after == 120 and len(seen) == 1


async def test_service_unavailable_backs_off_exponentially_for_reads() -> None:
    seen: list[httpx.Request] = []
    slept: list[float] = []
    answers: list[Any] = [_err(503, "service_unavailable")] * 3 + [OK_SECRET]
    async with _client(answers, seen, slept) as c:
        assert (await c.secrets.read("a/b")).data == {"k": "v"}
    assert len(seen) == 4 and len(slept) == 3
    assert all(0 <= s <= cap for s, cap in zip(slept, (0.5, 1.0, 2.0), strict=True))  # full jitter, doubling cap


async def test_retries_stop_after_max_and_raise_the_last_error() -> None:
    seen: list[httpx.Request] = []
    async with _client([_err(503, "service_unavailable")] * 4, seen, []) as c:
        with pytest.raises(ServiceUnavailableError) as err:
            await c.secrets.read("a/b")
    assert len(seen) == 4 and err.value.request_id == "req_t"


async def test_internal_error_is_retried_once() -> None:
    seen: list[httpx.Request] = []
    async with _client([_err(500, "internal_error")] * 3, seen, []) as c:
        with pytest.raises(InternalError):
            await c.secrets.read("a/b")
    assert len(seen) == 2


@pytest.mark.parametrize("answer", [_err(503, "service_unavailable"), _err(500, "internal_error")])
async def test_a_write_that_may_have_been_applied_is_never_repeated(answer: httpx.Response) -> None:
    seen: list[httpx.Request] = []
    async with _client([answer, httpx.Response(200, json={})], seen, []) as c:
        with pytest.raises((ServiceUnavailableError, InternalError)):
            await c.secrets.write("a/b", {"k": "v"})
    assert len(seen) == 1


async def test_connection_lost_mid_request_retries_reads_but_not_writes() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    seen: list[httpx.Request] = []
    async with _client([drop, OK_SECRET], seen, []) as c:
        assert (await c.secrets.read("a/b")).version == 1
    seen2: list[httpx.Request] = []
    async with _client([drop, httpx.Response(200, json={})], seen2, []) as c:
        with pytest.raises(TransportError) as err:
            await c.secrets.write("a/b", {"k": "v"})
    assert err.value.may_have_been_applied and len(seen2) == 1


async def test_connection_never_established_is_retried_even_for_writes() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    seen: list[httpx.Request] = []
    async with _client([refuse, httpx.Response(200, json={"path": "a/b", "version": 3})], seen, []) as c:
        assert (await c.secrets.write("a/b", {"k": "v"})).version == 3
    assert len(seen) == 2


@pytest.mark.parametrize("answer,exc", [(_err(404, "secret_not_found"), NotFoundError),
                                        (_err(409, "version_conflict"), ConflictError)])
async def test_no_retry_classes_raise_at_once(answer: httpx.Response, exc: type[Exception]) -> None:
    seen: list[httpx.Request] = []
    async with _client([answer, OK_SECRET], seen, []) as c:
        with pytest.raises(exc):
            await c.secrets.read("a/b")
    assert len(seen) == 1


async def test_token_expired_refreshes_client_credentials_once() -> None:
    tokens = iter(["tok-1", "tok-2"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": next(tokens), "expires_in": 3600})
        if request.headers["authorization"] == "Bearer tok-1":
            return _err(401, "token_expired")
        return OK_SECRET

    async with ScaiVaultClient("http://vault.test", client_id="svc", client_secret="sec",
                               token_url="http://vault.test/oauth/token",
                               transport=httpx.MockTransport(handler)) as c:
        assert (await c.secrets.read("a/b")).version == 1


# Lifecycle calls: issuing a certificate or a credential, signing, approving a CSR and rotating mint something new
# on every call, so after an answer that may follow their application (5xx, connection lost) they raise; revoking
# and forcing a sync are safe to repeat and are retried like reads.
NON_IDEMPOTENT: dict[str, Callable[[ScaiVaultClient], Any]] = {
    "pki.issue": lambda c: c.pki.issue("web", "a.example.com"),
    "pki.sign": lambda c: c.pki.sign("web", "-----BEGIN CERTIFICATE REQUEST-----"),
    "pki.csrs.approve": lambda c: c.pki.csrs.approve("csr_1"),
    "dynamic.generate": lambda c: c.dynamic.generate("pg", "ro"),
    "leases.renew": lambda c: c.leases.renew("lease_1", increment="1h"),
    "rotation.rotate": lambda c: c.rotation.rotate("rot_1"),
}
IDEMPOTENT: dict[str, tuple[Callable[[ScaiVaultClient], Any], dict[str, Any]]] = {
    "leases.revoke": (lambda c: c.leases.revoke("lease_1"), {"lease_id": "lease_1", "status": "revoked"}),
    "pki.certificates.revoke": (lambda c: c.pki.certificates.revoke("cert_1"), {"id": "cert_1", "revoked": True}),
    "federation.sync": (lambda c: c.federation.sync("fed_1"), {"id": "fed_1", "status": "sync_requested"}),
}


@pytest.mark.parametrize("call", sorted(NON_IDEMPOTENT))
async def test_lifecycle_calls_that_mint_are_never_repeated(call: str) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    seen: list[httpx.Request] = []
    async with _client([_err(503, "service_unavailable"), httpx.Response(200, json={})], seen, []) as c:
        with pytest.raises(ServiceUnavailableError):
            await NON_IDEMPOTENT[call](c)
    assert len(seen) == 1 and seen[0].method == "POST"
    seen = []
    async with _client([drop, httpx.Response(200, json={})], seen, []) as c:
        with pytest.raises(TransportError) as err:
            await NON_IDEMPOTENT[call](c)
    assert err.value.may_have_been_applied and len(seen) == 1
    seen = []
    async with _client([_err(429, "rate_limited", {"Retry-After": "1"}), _err(404, "not_found")], seen, []) as c:
        with pytest.raises(NotFoundError):  # a 429 is answered before the handler runs: retried even here
            await NON_IDEMPOTENT[call](c)
    assert len(seen) == 2


@pytest.mark.parametrize("call", sorted(IDEMPOTENT))
async def test_lifecycle_calls_safe_to_repeat_are_retried(call: str) -> None:
    fn, answer = IDEMPOTENT[call]
    seen: list[httpx.Request] = []
    slept: list[float] = []
    async with _client([_err(503, "service_unavailable"), httpx.Response(200, json=answer)], seen, slept) as c:
        result = await fn(c)
    assert len(seen) == 2 and len(slept) == 1 and result.raw == answer
