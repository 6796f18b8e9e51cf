"""One signed webhook POST (spec lifecycle.md §5.4), shared by the delivery activity and the test endpoint.

* Headers: X-ScaiVault-Event-Id, X-ScaiVault-Event-Type, X-ScaiVault-Timestamp (now, per attempt),
  X-ScaiVault-Signature (``sha256=`` HMAC over ``f"{timestamp}." + body``), User-Agent ScaiVault-Webhook/1.0.
* SSRF: the host is resolved and checked (services/events/webhook_urls.py) right before the request, and the
  connection goes to exactly that checked address (a pinned network backend), so DNS rebinding between the
  check and the connect is impossible. TLS still verifies the certificate against the URL's host name.
* No redirects (a 3xx is a failed attempt), no proxies from the environment, a total timeout of
  WEBHOOK_TIMEOUT_SECONDS, and at most WEBHOOK_RESPONSE_BODY_LIMIT bytes of the response are kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from clients.webhook_verify import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_AGENT,
    sign,
)
from core.errors import AppError
from core.settings import Settings
from services.events import webhook_urls

_pinned: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("webhook_pinned", default={})  # noqa: B039


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    response_code: int | None
    duration_ms: int
    error: str | None = None
    response_body: str | None = None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the address the SSRF check approved for this request's host, never to a fresh lookup."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        address = _pinned.get().get(host)
        if address is None:
            raise httpcore.ConnectError(f"no checked address for host {host!r}")
        return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        ssl_context = self._pool._ssl_context  # the verified default context httpx built
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_PinnedBackend(),
        )


class WebhookSender:
    """Process-wide (one connection pool). ``send`` never raises for receiver-side failures."""

    def __init__(self, settings: Settings, *, max_connections: int = 200) -> None:
        self.settings = settings
        self.timeout = settings.webhook_timeout_seconds
        self.body_limit = settings.webhook_response_body_limit
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=50, keepalive_expiry=30)
        self._client = httpx.AsyncClient(transport=_PinnedTransport(limits), follow_redirects=False,
                                         timeout=self.timeout, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    def headers(self, secret: str, body: bytes, event_id: str, event_type: str) -> dict[str, str]:
        ts = str(int(time.time()))
        return {
            "Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type, TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body),
        }

    async def send(self, url: str, secret: str, body: bytes, *, event_id: str, event_type: str) -> SendResult:
        started = time.perf_counter()
        allow_private = self.settings.allow_private_webhooks
        try:
            target = webhook_urls.parse(url, allow_private=allow_private)
            addresses = await webhook_urls.resolve(target, allow_private=allow_private)
        except AppError as exc:
            return SendResult(False, None, _ms(started), f"url refused: {exc.details.get('reason', exc.code)}")
        token = _pinned.set({target.host: addresses[0]})
        try:
            async with asyncio.timeout(self.timeout):
                return await self._post(url, secret, body, event_id, event_type, started)
        except TimeoutError:
            return SendResult(False, None, _ms(started), f"timeout after {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return SendResult(False, None, _ms(started), f"{type(exc).__name__}: {_short(str(exc))}")
        finally:
            _pinned.reset(token)

    async def _post(self, url: str, secret: str, body: bytes, event_id: str, event_type: str,
                    started: float) -> SendResult:
        headers = self.headers(secret, body, event_id, event_type)
        async with self._client.stream("POST", url, content=body, headers=headers) as resp:
            kept = bytearray()
            async for chunk in resp.aiter_raw():
                kept += chunk[: self.body_limit - len(kept)]
                if len(kept) >= self.body_limit:
                    break
            text = kept.decode("utf-8", "replace")
            ok = 200 <= resp.status_code < 300
            error = None if ok else (
                f"redirect not followed (HTTP {resp.status_code})" if 300 <= resp.status_code < 400
                else f"HTTP {resp.status_code}")
            return SendResult(ok, resp.status_code, _ms(started), error, text)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
