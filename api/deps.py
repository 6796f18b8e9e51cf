"""Request dependencies. Every route declares its scope (and rate-limit category) through ``authorized``.

    @router.get("/v1/secrets/{path:path}")
    async def read(ctx: Annotated[RequestContext, Depends(authorized("secrets:read", "read_secrets"))]): ...

The dependency authenticates the bearer token, resolves the effective tenant (path prefix, then X-Tenant-ID,
then the token claim), checks the scope (403 insufficient_scope naming it) and charges the rate limiter.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from api.context import RequestContext
from api.state import AppState
from core.errors import AppError


def app_state(request: Request) -> AppState:
    return request.app.state.sv  # type: ignore[no-any-return]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise AppError("authentication_required", "Authorization header is missing")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AppError("authentication_required", "Authorization header must be 'Bearer <token>'")
    return token


def client_ip(request: Request, state: AppState) -> str | None:
    peer = request.client.host if request.client else None
    trusted = state.components.get("trusted_proxies")
    if trusted and peer:
        import ipaddress

        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if any(addr in net for net in trusted):
            fwd = request.headers.get("x-forwarded-for")
            if fwd:
                return fwd.split(",")[0].strip()
    return peer


def _correlation_id(request: Request) -> str | None:
    value = request.headers.get("x-correlation-id")
    if value and 0 < len(value) <= 128 and value.isprintable():
        return value
    return None


def authorized(scope: str | None, category: str | None = None) -> Callable[[Request], Awaitable[RequestContext]]:
    """Build the dependency for a route needing ``scope`` (None: any valid token)."""

    async def dependency(request: Request) -> RequestContext:
        state = app_state(request)
        token = bearer_token(request)
        authenticator = state.get("authenticator")
        principal = await authenticator.authenticate(token)
        scope_state = request.scope["state"]
        scope_state["principal"] = principal  # lets the audit hook record a tenant-resolution denial
        path_tenant = scope_state.get("path_tenant")
        header_tenant = request.headers.get("x-tenant-id")
        tenant_id, partner_id = await state.get("tenants").resolve(principal, path_tenant, header_tenant)
        ctx = RequestContext(
            principal=principal, tenant_id=tenant_id, partner_id=partner_id,
            request_id=scope_state["request_id"], source_ip=client_ip(request, state),
            user_agent=request.headers.get("user-agent"), scope=scope, category=category,
            correlation_id=_correlation_id(request) or scope_state["request_id"],
            started_at=scope_state.get("started_at") or time.perf_counter(),
            response_headers=scope_state.setdefault("response_headers", []),
        )
        request.state.ctx = ctx
        if scope is not None and not principal.has_scope(scope):
            raise AppError("insufficient_scope", f"this operation needs the '{scope}' scope",
                           {"required_scope": scope, "token_scopes": sorted(principal.scopes)})
        limiter = state.components.get("rate_limiter")
        if limiter is not None and category is not None:
            await limiter.charge(ctx, category, 1)
        return ctx

    dependency.__name__ = f"authorized_{(scope or 'any').replace(':', '_')}"
    return dependency


def get_component(name: str) -> Callable[[Request], Any]:
    def dep(request: Request) -> Any:
        return app_state(request).get(name)

    return dep
