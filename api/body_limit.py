"""Request-body caps, enforced as plain ASGI before any handler reads a byte (``413 payload_too_large``).

uvicorn sets no body limit, so without this layer a handler that calls ``request.body()`` buffers whatever
the client sends. Each request gets a cap from the first matching :data:`RULES` entry (else
``MAX_REQUEST_BODY_BYTES``):

* a ``Content-Length`` above the cap is answered at once, without calling the application (so the body is
  never read; the connection is closed so uvicorn does not drain it either);
* a body without ``Content-Length`` (``Transfer-Encoding: chunked``) is counted as the application receives
  it; the chunk that crosses the cap is not delivered, and whatever the application answers instead (it may
  have turned the failed read into a 400) is replaced by the 413.

It sits inside RequestContextMiddleware, so the 413 carries the request id, is counted in the metrics and
goes through the audit hook like any other response. The fast GET routes served by that middleware never
read a body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from core.settings import Settings

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True, slots=True)
class BodyRule:
    """Requests whose method is in ``methods`` and whose path starts with one of ``prefixes``."""

    methods: frozenset[str]
    prefixes: tuple[str, ...]
    limit: int


def rules(settings: Settings) -> list[BodyRule]:
    """The per-route caps (first match wins). Secret writes and batches: MAX_SECRET_BODY_BYTES (the 128 KiB
    ``data`` and 16 KiB ``metadata`` limits of services/secrets/input.py, with room for JSON escaping)."""
    return [
        BodyRule(_WRITE_METHODS, ("/v1/secrets/", "/v1/partner/secrets/"), settings.max_secret_body_bytes),
    ]


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body crosses the cap."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, default_limit: int, rules: Sequence[BodyRule] = ()) -> None:
        self.app = app
        self.default_limit = default_limit
        self.rules = tuple(rules)

    def limit_for(self, method: str, path: str) -> int:
        for rule in self.rules:
            if method in rule.methods and path.startswith(rule.prefixes):
                return rule.limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "invalid_request", "Content-Length is not an integer", {})
                    return
                break
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                if not started:  # the app answered after a failed read (e.g. 400): replace it with the 413
                    started = True
                    await _too_large(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                started = True
                await _too_large(send, limit)
        except Exception:
            if not exceeded:
                raise
            if not started:
                started = True
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    await _reply(send, 413, "payload_too_large", f"request body is larger than this route's limit of {limit} bytes",
                 {"limit": limit})


async def _reply(send: Send, status: int, code: str, message: str, details: dict[str, int]) -> None:
    response = error_response(status, code, message, details, headers={"Connection": "close"})
    start: Message = {"type": "http.response.start", "status": status, "headers": response.raw_headers}
    await send(start)
    await send({"type": "http.response.body", "body": response.body})
