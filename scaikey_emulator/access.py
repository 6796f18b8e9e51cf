"""Bearer authentication and the admin-API scope gate (spec §4.1 / §9.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import HTTPException, Request

from scaikey_emulator.common import emu_of
from scaikey_emulator.runtime import ADMIN_SCOPES, PLATFORM_SCOPE_DETAIL, Emulator

ROLE_RANK = {"tenant_admin": 1, "partner_admin": 2, "super_admin": 3}


@dataclass
class Caller:
    """The verified bearer of an admin/tenant API request."""

    claims: dict[str, Any]
    emu: Emulator

    @property
    def scopes(self) -> set[str]:
        scope = self.claims.get("scope", "")
        return set(scope.split()) if isinstance(scope, str) else set(scope or [])

    @property
    def role(self) -> str | None:
        role = self.claims.get("role")
        if isinstance(role, str) and role in ROLE_RANK:
            return role
        roles = [r for r in self.claims.get("roles", []) or [] if r in ROLE_RANK]
        return max(roles, key=ROLE_RANK.__getitem__) if roles else None

    @property
    def platform(self) -> bool:
        return self.claims.get("platform_token") is True

    @property
    def service(self) -> bool:
        return self.claims.get("token_type") == "client_credentials"

    @property
    def tenant_id(self) -> str | None:
        return self.claims.get("tenant_id")

    @property
    def partner_id(self) -> str | None:
        return self.claims.get("partner_id") or self.emu.store.partner_of_tenant(self.tenant_id)

    @property
    def client_id(self) -> str | None:
        return self.claims.get("client_id")

    @property
    def is_global_admin(self) -> bool:
        return self.role == "super_admin" or (self.platform and bool(self.scopes & ADMIN_SCOPES))

    def visible_tenants(self) -> set[str] | None:
        """None = every tenant; otherwise the tenant ids this caller may act on as an admin."""
        if self.is_global_admin:
            return None
        store = self.emu.store
        if self.role == "partner_admin":
            return {t.id for t in store.tenants.values() if t.partner_id == self.partner_id}
        if self.role == "tenant_admin" and self.tenant_id:
            return {self.tenant_id}
        return set()


def current_caller(request: Request) -> Caller:
    """Dependency: verify the bearer JWT or answer 401 ``{"detail": ...}``."""
    emu = emu_of(request)
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = emu.verify(header[7:].strip())
    except jwt.ExpiredSignatureError as exc:
        raise HTTPException(401, "Token has expired", headers={"WWW-Authenticate": "Bearer"}) from exc
    except jwt.InvalidTokenError as exc:
        raise HTTPException(401, f"Invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from exc
    return Caller(claims=claims, emu=emu)


def require_admin(caller: Caller, *, write: bool = False) -> set[str] | None:
    """Admin-role or admin-scoped platform token. Returns the visible tenants (None = all)."""
    if caller.platform and not caller.role:
        if not caller.scopes & ADMIN_SCOPES:
            raise HTTPException(403, PLATFORM_SCOPE_DETAIL)
        if write and "admin:write" not in caller.scopes:
            raise HTTPException(403, "Platform token requires admin:write scope")
        return None
    if caller.role is None:
        raise HTTPException(403, "Admin role or admin:read/admin:write scope required")
    return caller.visible_tenants()


def require_global_admin(caller: Caller, *, write: bool = False) -> None:
    """super_admin or an admin-scoped platform token (partners, webhooks, GLOBAL apps)."""
    require_admin(caller, write=write)
    if not caller.is_global_admin:
        raise HTTPException(403, "super_admin or platform admin scope required")


def require_read(caller: Caller, tier_scope: str) -> set[str] | None:
    """Admin access, or a tenant-tier token carrying ``tier_scope`` (own tenant only)."""
    if caller.platform or caller.role:
        return require_admin(caller)
    if tier_scope in caller.scopes and caller.tenant_id:
        return {caller.tenant_id}
    raise HTTPException(403, f"Insufficient scope: requires an admin role, admin:read or {tier_scope}")


def require_app_admin(caller: Caller) -> set[str] | None:
    """effective-users / assignees: admin only; anybody else gets the platform-scope 403 body."""
    if caller.platform or caller.role:
        return require_admin(caller)
    raise HTTPException(403, PLATFORM_SCOPE_DETAIL)


def check_tenant(visible: set[str] | None, tenant_id: str | None) -> None:
    if visible is not None and tenant_id not in visible:
        raise HTTPException(403, f"Access to tenant {tenant_id} is not allowed for this token")
