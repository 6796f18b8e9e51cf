"""Request dependencies. Every route declares its scope (and rate-limit category) through ``authorized``.

    @router.get("/v1/secrets/{path:path}")
    async def read(ctx: Annotated[RequestContext, Depends(authorized("secrets:read", "read_secrets"))]): ...

The dependency authenticates the bearer token, resolves the effective tenant (path prefix, then X-Tenant-ID,
then the token claim), charges the rate limiter (429 before anything is audited) and checks the scope (403
insufficient_scope naming it; the denial is audited, and was charged like any other request).
"""

from __future__ import annotations

import ipaddress
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


_MAX_FORWARDED_HOPS = 32  # entries of X-Forwarded-For examined, from the right


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
    return ip


def forwarded_client(peer: str | None, forwarded_for: list[str], trusted: list[Any] | None) -> str | None:
    """The client address: the TCP peer, unless the peer is a trusted proxy; then ``X-Forwarded-For`` is walked
    from the right (the entry the nearest proxy appended) past every trusted proxy, and the first untrusted
    entry is the client. An entry that is not a bare IP address (a name, ``unknown``, an address with a port,
    garbage) ends the walk with the peer address: nothing a client wrote can be taken on trust. If every entry is
    a trusted proxy, the left-most one is the client. Several header lines count as one comma-joined list."""
    peer_ip = _parse_ip(peer) if peer else None
    if peer_ip is None:
        return peer
    if not trusted or not any(peer_ip in net for net in trusted):
        return str(peer_ip)
    entries = [e.strip() for e in ",".join(forwarded_for).split(",")]
    client = peer_ip
    for entry in reversed(entries[-_MAX_FORWARDED_HOPS:]):
        ip = _parse_ip(entry)
        if ip is None:
            return str(peer_ip)
        client = ip
        if not any(ip in net for net in trusted):
            break
    return str(client)


def client_ip(request: Request, state: AppState) -> str | None:
    """The request's client address (audit ``source_ip``, ``ip_ranges`` conditions, per-address limits)."""
    peer = request.client.host if request.client else None
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), state.components.get("trusted_proxies"))


def _correlation_id(request: Request) -> str | None:
    value = request.headers.get("x-correlation-id")
    if value and 0 < len(value) <= 128 and value.isprintable():
        return value
    return None


# Tenant-resolution errors that audit/hooks.py records under the caller's home tenant.
_AUDITED_TENANT_DENIALS = frozenset({"tenant_access_denied", "tenant_not_found"})


def authorized(scope: str | None, category: str | None = None) -> Callable[[Request], Awaitable[RequestContext]]:
    """Build the dependency for a route needing ``scope`` (None: any valid token)."""

    async def dependency(request: Request) -> RequestContext:
        state = app_state(request)
        token = bearer_token(request)
        authenticator = state.get("authenticator")
        principal = await authenticator.authenticate(token)
        scope_state = request.scope["state"]
        path_tenant = scope_state.get("path_tenant")
        header_tenant = request.headers.get("x-tenant-id")
        limiter = state.components.get("rate_limiter") if category is not None else None

        def context(tenant_id: str, partner_id: str | None) -> RequestContext:
            return RequestContext(
                principal=principal, tenant_id=tenant_id, partner_id=partner_id,
                request_id=scope_state["request_id"], source_ip=client_ip(request, state),
                user_agent=request.headers.get("user-agent"), scope=scope, category=category,
                correlation_id=_correlation_id(request) or scope_state["request_id"],
                started_at=scope_state.get("started_at") or time.perf_counter(),
                response_headers=scope_state.setdefault("response_headers", []),
            )

        # Every request is charged to its identity's bucket before anything about it is audited, denials
        # included; a request refused for its rate is answered 429 and not audited (the context is published
        # only after the charge), so a valid token cannot flood the audit log with denials.
        try:
            tenant_id, partner_id = await state.get("tenants").resolve(principal, path_tenant, header_tenant)
        except AppError as exc:
            if limiter is not None and exc.code in _AUDITED_TENANT_DENIALS and principal.tenant_id:
                await limiter.charge(context(principal.tenant_id, principal.partner_id), category, 1)
            scope_state["principal"] = principal  # lets the audit hook record the tenant-resolution denial
            raise
        ctx = context(tenant_id, partner_id)
        if limiter is not None:
            await limiter.charge(ctx, category, 1)
        request.state.ctx = ctx
        if scope is not None and not principal.has_scope(scope):
            raise AppError("insufficient_scope", f"this operation needs the '{scope}' scope",
                           {"required_scope": scope, "token_scopes": sorted(principal.scopes)})
        return ctx

    dependency.__name__ = f"authorized_{(scope or 'any').replace(':', '_')}"
    return dependency


def get_component(name: str) -> Callable[[Request], Any]:
    def dep(request: Request) -> Any:
        return app_state(request).get(name)

    return dep
