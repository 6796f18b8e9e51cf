"""HTTP plumbing shared by every resource: bearer auth, tenant header, error mapping and retries.

Retry classes (core.md §8.3), applied by ``RetryPolicy``:

* ``rate_limited`` (429): retried, waiting ``Retry-After`` (the limiter answers before the handler runs, so
  even a write was not applied).
* ``service_unavailable`` / ``kms_unavailable`` (503): retried with exponential backoff and full jitter.
* ``internal_error`` (500): retried once.
* connection never established (refused, connect timeout, pool timeout): retried.
* ``token_expired`` (401) with refreshable credentials: the token is refreshed once, then the call repeats.
* everything else (400, 403, 404, 409, 422, other 401s, unlisted codes): raised at once.

A call that is not idempotent (a write, create or delete) is never repeated once it may have been applied:
after a 5xx answer or a connection lost mid-request it raises instead. ``version_conflict`` is not retried
automatically because the caller has to re-read first.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from scaivault_sdk import __version__
from scaivault_sdk.auth import Credential
from scaivault_sdk.errors import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ServiceUnavailableError,
    TransportError,
    error_from_response,
)

log = logging.getLogger("scaivault_sdk")

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry. ``max_retries=0`` disables retries."""

    max_retries: int = 3
    backoff_base: float = 0.5        # first delay; doubles each attempt
    backoff_max: float = 8.0         # cap per delay
    max_retry_after: float = 60.0    # a Retry-After longer than this is raised instead of waited out

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(max, base * 2**attempt))."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * (2 ** attempt)))


class Transport:
    """One ``httpx.AsyncClient`` plus credentials; ``request`` returns a 2xx response or raises."""

    def __init__(self, base_url: str, credential: Credential | None, *, tenant_id: str | None = None,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, headers: Mapping[str, str] | None = None,
                 sleep: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.retry = retry or RetryPolicy()
        self._sleep = sleep or asyncio.sleep
        default_headers = {"User-Agent": f"scaivault-sdk-python/{__version__}", **(headers or {})}
        if tenant_id:
            default_headers["X-Tenant-ID"] = tenant_id
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=default_headers,
                                      transport=transport)
        bind = getattr(credential, "bind", None)
        if bind is not None:
            bind(self.http)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json: Any = None, idempotent: bool | None = None, authenticated: bool = True,
                      stream: bool = False, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send with retries. ``idempotent`` defaults to True for GET/HEAD and False otherwise.

        With ``stream=True`` the 2xx response body is not read yet: iterate it, then ``await response.aclose()``.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        refreshed = False
        attempt = 0
        while True:
            send_headers = dict(headers or {})
            if authenticated:
                if self.credential is None:
                    raise AuthenticationError(401, "authentication_required",
                                              "no token configured (token=, client credentials, or SCAIVAULT_TOKEN)")
                send_headers["Authorization"] = f"Bearer {await self.credential.token()}"
            try:
                req = self.http.build_request(method, path, params=clean, json=json, headers=send_headers)
                response = await self.http.send(req, stream=stream)
            except httpx.HTTPError as exc:
                never_sent = isinstance(exc, _NEVER_SENT)
                err = TransportError(f"{method} {path}: {type(exc).__name__}", may_have_been_applied=not never_sent)
                if (never_sent or idempotent) and attempt < self.retry.max_retries:
                    await self._wait(attempt, None, err)
                    attempt += 1
                    continue
                raise err from None
            if response.status_code < 400:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            error = error_from_response(response)
            if (isinstance(error, AuthenticationError) and error.code == "token_expired" and not refreshed
                    and self.credential is not None and self.credential.refreshable):
                self.credential.invalidate()
                refreshed = True
                continue
            delay = self._retry_delay(error, attempt, idempotent)
            if delay is None:
                raise error
            await self._wait(attempt, delay, error)
            attempt += 1

    def _retry_delay(self, error: APIError, attempt: int, idempotent: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to raise ``error`` now."""
        if attempt >= self.retry.max_retries:
            return None
        if isinstance(error, RateLimitError):  # refused before the handler ran: safe for every method
            after = error.retry_after
            if after is None:
                return self.retry.backoff(attempt)
            return after if after <= self.retry.max_retry_after else None
        if not idempotent:
            return None  # a 5xx answer to a write: it may have been applied
        if isinstance(error, ServiceUnavailableError) or error.code in ("service_unavailable", "kms_unavailable"):
            hinted = error.retry_after_hint()
            backoff = self.retry.backoff(attempt)
            return backoff if hinted is None else min(max(hinted, backoff), self.retry.max_retry_after)
        if error.code == "internal_error" and attempt == 0:
            return self.retry.backoff(attempt)
        return None

    async def _wait(self, attempt: int, delay: float | None, cause: Exception) -> None:
        seconds = self.retry.backoff(attempt) if delay is None else delay
        log.debug("retrying after %s in %.2fs (attempt %d)", type(cause).__name__, seconds, attempt + 1)
        await self._sleep(seconds)
