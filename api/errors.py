"""One place that turns failures into the documented envelope {"error": {code, message, details, request_id}}."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core.errors import AppError
from core.logging import request_id_var
from db.engine import PoolExhausted, connection_lost

log = logging.getLogger("scaivault.api")


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    rid = request_id_var.get()
    body = {"error": {"code": code, "message": message, "details": field_details(details, message),
                      "request_id": rid}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def field_details(details: dict[str, Any] | None, message: str) -> dict[str, Any]:
    """One shape for "this input is wrong" on every endpoint: ``details.fields[]`` of ``{field, message}``.

    Request validation (pydantic), the services' ``field_error`` and the middleware already build it; an error
    raised with a single ``details.field`` (``invalid_policy``, ``invalid_duration``, a service's own
    ``validation_error``, ...) gets the same list here, next to the ``field`` it keeps for compatibility.
    """
    if not details:
        return {}
    field = details.get("field")
    if isinstance(field, str) and "fields" not in details:
        return {**details, "fields": [{"field": field, "message": message}]}
    return details


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or ".".join(str(p) for p in loc)


async def app_error_response(request: Request, exc: Exception) -> Response:
    """The envelope response for an AppError (after the ``app.state.on_error`` hook, e.g. failure audit)."""
    assert isinstance(exc, AppError)
    hook = getattr(request.app.state, "on_error", None)
    if hook is not None:
        await hook(request, exc)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") in {"json_invalid", "model_attributes_type"} and e.get("loc", ("",))[0] == "body"
           for e in errors) or any(e.get("type") == "json_invalid" for e in errors):
        app_exc = AppError("invalid_request", "request body is not valid JSON")
    elif errors and all(e.get("loc") == ("body",) for e in errors):
        app_exc = AppError("invalid_request", "request body must be a JSON object of the documented shape")
    else:
        fields = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e.get("type")}
            for e in errors
        ]
        app_exc = AppError("validation_error", "request validation failed", {"fields": fields})
    return await app_error_response(request, app_exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", f"no route for {request.method} {request.url.path}")
    if exc.status_code == 405:
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed on this route",
                              headers=dict(exc.headers or {}))
    code = {400: "invalid_request", 401: "authentication_required", 403: "forbidden", 413: "payload_too_large",
            429: "rate_limited", 503: "service_unavailable"}.get(exc.status_code, "internal_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def _unstorable_text(request: Request, exc: Exception) -> Response:
    """PostgreSQL refused a text value it cannot store (NUL: SQLSTATE 22021, 22P05). Only a client can have sent
    it, so it is the client's error (422), never a 500; the change's transaction has rolled back. A backstop for
    body fields that no validator checks for NUL (paths, query values and audit entries are checked earlier)."""
    return await app_error_response(request, AppError(
        "validation_error", "a value contains a character that cannot be stored (NUL)",
        {"fields": [{"field": "body", "message": "must not contain NUL characters"}]}))


def dependency_unavailable(exc: BaseException) -> AppError | None:
    """The documented error for an exception that means a dependency is gone, else None (a real 500).

    A database connection cut by PostgreSQL's shutdown or a terminated backend, or refused while PostgreSQL is
    down or starting (see ``db.engine.connection_lost``), is ``503 service_unavailable`` naming the database,
    with ``Retry-After``: the request may be retried, nothing is wrong with it. Every route goes through here
    (the request middleware and the last-resort handler), so no route maps these itself."""
    if isinstance(exc, (PoolExhausted, sa_exc.TimeoutError)):  # overload, not an outage: every pooled connection stayed busy
        log.warning("database pool exhausted", extra={"error": type(exc).__name__})
        return AppError("service_unavailable", "the server is busy (no database connection became free in "
                        "time); retry shortly", {"dependency": "database", "reason": "pool_exhausted"},
                        headers={"Retry-After": "1"})
    if connection_lost(exc):
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return AppError("service_unavailable", "the database is unavailable (connection lost or refused); "
                        "retry shortly", {"dependency": "database"}, headers={"Retry-After": "2"})
    return None


async def _unhandled(request: Request, exc: Exception) -> Response:
    unavailable = dependency_unavailable(exc)
    if unavailable is not None:
        return await app_error_response(request, unavailable)
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__),
              extra={"path": request.url.path, "method": request.method})
    return error_response(500, "internal_error", "an unexpected error occurred; quote the request_id to support")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_response)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for unstorable in (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError):
        app.add_exception_handler(unstorable, _unstorable_text)
    app.add_exception_handler(Exception, _unhandled)
