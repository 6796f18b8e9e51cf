"""The outermost ASGI layer, written as plain ASGI (BaseHTTPMiddleware costs ~40µs a request).

It: accepts or generates X-Request-ID and echoes it; maps ``/v1/t/{tenant_id}/...`` onto ``/v1/...`` with the
tenant recorded in ``scope["state"]["path_tenant"]``; records Prometheus metrics by route template; turns any
escaped exception into the 500 envelope (with the request id header still set).

Hot paths can be served straight from here as :class:`FastRoute`s (a router module lists them in
``FAST_ROUTES``; create_app passes them in), skipping FastAPI's route matching and middleware layers, which
cost ~50 µs of the ~150 µs CPU of a secret read. Such an endpoint gets ``request.path_params["path"]`` (the
rest of the path after the prefix) and raises AppError as usual.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import app_error_response, dependency_unavailable, error_response
from auth.tenancy import TENANT_ID
from core import metrics
from core.errors import AppError
from core.ids import ulid
from core.logging import request_id_var

log = logging.getLogger("scaivault.access")
# Used with fullmatch (``$`` would also accept a trailing newline; ``.`` would stop at one).
_RID_OK = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_TENANT_PREFIX = re.compile(rf"/v1/t/({TENANT_ID.pattern})(/.*)", re.DOTALL)  # one rule with X-Tenant-ID
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_PATH_QUERY = frozenset({"prefix"})  # query parameters that carry a secret path (the secrets list)
# Metric children by label values (bounded: route templates, not raw paths).
_ACTIVE: dict[str, Any] = {}
_SERIES: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}


def _category(path: str) -> str:
    parts = path.split("/", 3)
    if len(parts) > 2 and parts[1] == "v1":
        return parts[2] or "root"
    return parts[1] if len(parts) > 1 and parts[1] else "root"


def hostile_url(path: str, query: bytes) -> Response | None:
    """The answer to a URL no route can take, or None. A control character (NUL, CR, LF, TAB, DEL, ...) in the
    decoded path is ``400 invalid_path``; in a query name or value ``422 validation_error`` naming it (``400
    invalid_path`` for the secrets list's ``prefix``). Refused here,
    before routing and authentication, for every route: Starlette's route patterns (``^...$`` with ``re.match``,
    ``.`` for ``{x:path}``) would route ``/v1/secrets/app/x%0A`` as ``app/x``, and PostgreSQL refuses NUL, so such
    a value could only be silently rewritten or end in a 5xx (issue 12)."""
    if _CONTROL.search(path) is not None:
        return error_response(400, "invalid_path", "the request path contains a control character (NUL, CR, LF, "
                              "TAB, ...)", {"reason": "control character in the URL path"})
    if query and (b"%" in query or _CONTROL.search(query.decode("latin-1")) is not None):
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if _CONTROL.search(name) is not None or _CONTROL.search(value) is not None:
                if name in _PATH_QUERY:
                    return error_response(400, "invalid_path", f"{name} contains a control character",
                                          {"field": name, "reason": "control character"})
                message = "must not contain control characters (NUL, CR, LF, TAB, ...)"
                return error_response(422, "validation_error", f"query parameter {name!r}: {message}",
                                      {"fields": [{"field": name, "message": message}]})
    return None


@dataclass(frozen=True, slots=True)
class FastRoute:
    """``method`` requests whose path starts with ``prefix`` go straight to ``endpoint``."""

    method: str
    prefix: str                                        # e.g. "/v1/secrets/"
    path: str                                          # route template, for metrics labels
    endpoint: Callable[[Request], Awaitable[Response]]


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = False, fast_routes: Sequence[FastRoute] = ()) -> None:
        self.app = app
        self.access_log = access_log
        self.fast_routes = tuple(fast_routes)

    def serves_fast(self, scope: Scope) -> bool:
        """Whether this request is one of the fast routes (after the ``/v1/t/{tenant}`` prefix is taken off)."""
        path: str = scope["path"]
        m = _TENANT_PREFIX.fullmatch(path)
        if m:
            path = "/v1" + m.group(2)
        return self._fast(scope["method"], path) is not None

    def _fast(self, method: str, path: str) -> FastRoute | None:
        for route in self.fast_routes:
            if route.method == method and path.startswith(route.prefix):
                return route
        return None

    @staticmethod
    async def _serve_fast(route: FastRoute, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        scope["path_params"] = {"path": path[len(route.prefix):]}
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except AppError as exc:
            response = await app_error_response(request, exc)
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                candidate = v.decode("latin-1")
                if _RID_OK.fullmatch(candidate):
                    rid = candidate
                break
        if rid is None:
            rid = "req_" + ulid()
        token = request_id_var.set(rid)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        path: str = scope["path"]
        m = _TENANT_PREFIX.fullmatch(path)
        if m:
            state["path_tenant"] = m.group(1)
            new_path = "/v1" + m.group(2)
            scope = dict(scope, path=new_path, raw_path=new_path.encode())
            path = new_path
        category = _category(path)
        rid_header = (b"x-request-id", rid.encode())
        status_holder = [500]
        started = [False]

        app_state = getattr(scope.get("app"), "state", None)
        before_response = getattr(app_state, "before_response", None)
        replaced = [False]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if replaced[0]:
                    return
                if before_response is not None:
                    # e.g. the audit hook: commits the request's audit entry before anything is sent; if it
                    # cannot, the response is replaced (fail closed) and the original body is dropped.
                    override = await before_response(scope, message["status"])
                    if override is not None:
                        replaced[0] = True
                        status, body = override
                        message = {"type": "http.response.start", "status": status,
                                   "headers": [(b"content-type", b"application/json"),
                                               (b"content-length", str(len(body)).encode())]}
                        started[0] = True
                        status_holder[0] = status
                        extra = state.get("response_headers")
                        message["headers"] = [*message["headers"], rid_header, *(extra or ())]
                        await send(message)
                        await send({"type": "http.response.body", "body": body})
                        return
                started[0] = True
                status_holder[0] = message["status"]
                # Components may add response headers for this request (e.g. X-RateLimit-*) via scope state.
                extra = state.get("response_headers")
                message["headers"] = [*message.get("headers", []), rid_header, *(extra or ())]
            elif replaced[0]:
                return
            await send(message)

        t0 = time.perf_counter()
        state["started_at"] = t0
        active = _ACTIVE.get(category)
        if active is None:
            active = _ACTIVE[category] = metrics.ACTIVE_REQUESTS.labels(category)
        active.inc()
        fast = self._fast(scope["method"], path) if self.fast_routes else None
        try:
            refused = hostile_url(path, scope.get("query_string") or b"")
            if refused is not None:
                await refused(scope, receive, send_wrapper)
            elif fast is not None and "app" in scope:
                await self._serve_fast(fast, path, scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            unavailable = dependency_unavailable(exc)
            if unavailable is not None:  # e.g. the database connection was lost: 503, not a crash
                if not started[0]:
                    if "app" in scope:  # the error hook (failure audit) needs the app
                        response = await app_error_response(Request(scope, receive), unavailable)
                    else:
                        response = error_response(unavailable.status, unavailable.code, unavailable.message,
                                                  unavailable.details, unavailable.headers)
                    await response(scope, receive, send_wrapper)
                return
            log.error("unhandled error", exc_info=exc, extra={"path": path, "method": scope["method"]})
            if not started[0]:
                body = orjson.dumps({"error": {
                    "code": "internal_error",
                    "message": "an unexpected error occurred; quote the request_id to support",
                    "details": {}, "request_id": rid}})
                await send_wrapper({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(body)).encode())]})
                await send_wrapper({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - t0
            active.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            status = status_holder[0]
            key = (method, template, category, status)
            series = _SERIES.get(key)
            if series is None:  # label lookups take a lock and hash every label: do them once per series
                series = _SERIES[key] = (metrics.REQUESTS.labels(method, template, category, str(status)),
                                         metrics.REQUEST_DURATION.labels(method, template, category))
            series[0].inc()
            series[1].observe(elapsed)
            if self.access_log:
                log.info("request", extra={"method": method, "path": path, "route": template, "status": status,
                                           "duration_ms": round(elapsed * 1000, 2)})
            request_id_var.reset(token)
