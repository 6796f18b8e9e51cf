"""Request hooks that make sure every authenticated request is audited exactly as it ended.

* ``on_error(request, AppError)`` (api/errors.py calls it for every AppError response): a request with a
  RequestContext whose entry is not yet written (or was written inside a transaction that the error rolled
  back) gets a ``success=false`` entry with the error code and what ``ctx.describe`` declared. A denial while
  resolving the tenant (no context yet) is recorded under the caller's home tenant as ``tenant_access``.
* ``before_response(scope, status)`` (api/middleware.py calls it before the response starts): a request with a
  context that never called ``record`` (e.g. whoami, an unhandled 500, an audit write that failed in
  ``on_error``) gets its entry now; the route's own entry is preferred because it knows the resource. If the
  entry cannot be committed, the response is replaced by 503 audit_unavailable (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import orjson
from fastapi import Request

from api.context import RequestContext
from core.errors import AppError
from core.logging import request_id_var

log = logging.getLogger("scaivault.audit")
_TENANT_DENIALS = {"tenant_access_denied", "tenant_not_found"}


def _recorder(app: Any) -> Any:
    return app.state.sv.components["audit"]


def _route(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", None) or scope.get("path", ""))


def _generic_extra(scope: MutableMapping[str, Any], status: int) -> dict[str, Any]:
    return {"method": scope.get("method"), "route": _route(scope), "status": status}


async def on_error(request: Request, exc: AppError) -> None:
    state = request.scope.get("state") or {}
    ctx: RequestContext | None = state.get("ctx")
    state["audit_error_code"] = exc.code
    recorder = _recorder(request.app)
    try:
        if ctx is not None:
            if ctx.audited and not ctx.audited_in_tx:
                return
            await recorder.record(ctx, success=False, error_code=exc.code,
                                  extra=_generic_extra(request.scope, exc.status))
            ctx.audited_in_tx = False
        elif exc.code in _TENANT_DENIALS and state.get("principal") is not None:
            await _record_tenant_denial(request, state["principal"], exc)
    except AppError:
        log.error("could not audit a failed request", extra={"error_code": exc.code})


async def _record_tenant_denial(request: Request, principal: Any, exc: AppError) -> None:
    if not principal.tenant_id:
        return
    from api.deps import client_ip

    ctx = RequestContext(
        principal=principal, tenant_id=principal.tenant_id, partner_id=principal.partner_id,
        request_id=request.scope["state"]["request_id"], source_ip=client_ip(request, request.app.state.sv),
        user_agent=request.headers.get("user-agent"), scope=None, category=None,
        correlation_id=request.headers.get("x-correlation-id") or request.scope["state"]["request_id"],
        started_at=request.scope["state"].get("started_at") or 0.0,
    )
    extra = {**_generic_extra(request.scope, exc.status),
             "requested_tenant": request.headers.get("x-tenant-id") or request.scope["state"].get("path_tenant")}
    await _recorder(request.app).record(ctx, action="tenant_access", success=False, error_code=exc.code,
                                        resource_type="tenant", extra=extra)


def _unavailable_body() -> bytes:
    return orjson.dumps({"error": {
        "code": "audit_unavailable",
        "message": "the audit log could not be written; the request was not completed",
        "details": {}, "request_id": request_id_var.get()}})


async def before_response(scope: dict[str, Any], status: int) -> tuple[int, bytes] | None:
    state = scope.get("state") or {}
    ctx: RequestContext | None = state.get("ctx")
    if ctx is None or ctx.audited:
        return None
    code = state.get("audit_error_code") if status >= 400 else None
    if status >= 500 and code is None:
        code = "internal_error"
    elif status >= 400 and code is None:
        code = "request_failed"
    try:
        await _recorder(scope["app"]).record(ctx, success=status < 400, error_code=code,
                                             extra=_generic_extra(scope, status))
        return None
    except Exception as exc:  # AppError(audit_unavailable) or anything unexpected: fail closed
        if not isinstance(exc, AppError):
            log.error("audit hook failed", exc_info=exc)
        return 503, _unavailable_body()
