"""Effective-tenant resolution (spec core.md §4.2): ``/v1/t/{tenant_id}`` path, then ``X-Tenant-ID``, then the
token's ``tenant_id`` claim. Switching tenant needs partner-admin privileges and a tenant of the caller's partner
(super admins may cross partners).

Errors: an ``X-Tenant-ID`` that is not a tenant id (``TENANT_ID``, the rule the ``/v1/t/{tenant_id}`` prefix uses,
full-string) -> 400 invalid_request, before the value is looked up, logged or audited; non-partner-admin switching
-> 403 tenant_access_denied; unknown tenant -> 404 tenant_not_found; partner admin targeting another partner's
tenant -> 403 access_denied.
"""

from __future__ import annotations

import re
import time

from auth.principal import Principal
from core.errors import AppError
from db.engine import Database
from repositories import tenants as repo
from repositories.tenants import UNASSIGNED_PARTNER, is_placeholder_partner

__all__ = ["TENANT_ID", "UNASSIGNED_PARTNER", "TenantResolver", "is_placeholder_partner"]

#: A tenant id as the API accepts it, in the ``/v1/t/{tenant_id}`` prefix and in ``X-Tenant-ID`` (use fullmatch).
TENANT_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def header_tenant_id(value: str | None) -> str | None:
    """The tenant an ``X-Tenant-ID`` header names (None: no header), or ``400 invalid_request`` when the value is
    not a tenant id. The value is never echoed back (it may hold anything a client sent)."""
    if value is None:
        return None
    value = value.strip(" \t")  # optional whitespace around a header value is not part of it (RFC 9110)
    if not TENANT_ID.fullmatch(value):
        raise AppError("invalid_request", "X-Tenant-ID must be a tenant id: 1-128 characters of A-Z, a-z, 0-9, "
                       "'_' and '-'", {"field": "X-Tenant-ID"})
    return value


class TenantResolver:
    def __init__(self, db: Database, ttl_seconds: float = 60.0) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[float, str | None, bool]] = {}  # tenant -> (expiry, partner, active)

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    async def _lookup(self, tenant_id: str) -> tuple[str | None, bool] | None:
        hit = self._cache.get(tenant_id)
        now = time.monotonic()
        if hit and hit[0] > now:
            return (hit[1], hit[2]) if hit[1] is not None else None
        async with self.db.raw() as conn:
            row = await repo.get_tenant(conn, tenant_id)
        if row is None:
            self._cache[tenant_id] = (now + 5.0, None, False)  # short negative cache
            return None
        active = row["deleted_at"] is None and row["status"] == "ACTIVE"
        self._cache[tenant_id] = (now + self.ttl, row["partner_id"], active)
        return row["partner_id"], active

    async def _home(self, principal: Principal) -> tuple[str, str | None]:
        tenant_id = principal.tenant_id
        if tenant_id is None:
            raise AppError(
                "tenant_access_denied",
                "this token is not bound to a tenant; address one with /v1/t/{tenant_id} or X-Tenant-ID",
            )
        found = await self._lookup(tenant_id)
        if found is None:
            partner = principal.partner_id  # None: the tenant's own placeholder partner (repositories/tenants.py)
            async with self.db.raw() as conn:
                row = await repo.ensure_tenant(conn, tenant_id, partner)
            self._cache[tenant_id] = (time.monotonic() + self.ttl, row["partner_id"], True)
            return tenant_id, row["partner_id"]
        partner_id, active = found
        if not active:
            raise AppError("access_denied", "this tenant is suspended or deleted", {"tenant_id": tenant_id})
        return tenant_id, partner_id

    async def resolve(
        self, principal: Principal, path_tenant: str | None, header_tenant: str | None
    ) -> tuple[str, str | None]:
        header = header_tenant_id(header_tenant)
        target = path_tenant or header
        if not target or target == principal.tenant_id:
            return await self._home(principal)
        if not principal.is_partner_admin:
            raise AppError("tenant_access_denied",
                           "switching tenant needs partner-admin privileges", {"tenant_id": target})
        found = await self._lookup(target)
        if found is None:
            raise AppError("tenant_not_found", f"tenant '{target}' does not exist", {"tenant_id": target})
        partner_id, active = found
        if not principal.is_super_admin and partner_id != principal.partner_id:
            raise AppError("access_denied", "that tenant belongs to another partner", {"tenant_id": target})
        if not active:
            raise AppError("access_denied", "this tenant is suspended or deleted", {"tenant_id": target})
        return target, partner_id
