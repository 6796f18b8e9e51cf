"""/v1/admin/rate-limits: the tenant's effective per-minute limits, and its overrides (scope admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from core.errors import AppError
from ratelimit.categories import DEFAULT_LIMITS, canonical

router = APIRouter(prefix="/v1/admin/rate-limits", tags=["admin"])
Admin = Annotated[RequestContext, Depends(authorized("admin", "admin_operations"))]


class LimitsUpdate(BaseModel):
    limits: dict[str, int | None] = Field(
        description="category -> requests per minute (null removes the tenant's override)", max_length=64)


async def _view(request: Request, tenant_id: str) -> dict[str, Any]:
    table = app_state(request).get("rate_limits")
    return {"tenant_id": tenant_id, "defaults": dict(table.base),
            "overrides": dict(await table.tenant_overrides(tenant_id)),
            "effective": await table.effective(tenant_id),
            "ceiling": app_state(request).settings.rate_limit_tenant_ceiling,
            "cache_seconds": app_state(request).settings.rate_limit_tenant_cache_seconds}


@router.get("", summary="Defaults, the tenant's overrides and the effective limits")
async def get_limits(ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rate_limit_read", resource_type="rate_limits", resource_id=ctx.tenant_id)
    return await _view(request, ctx.tenant_id)


def _may_raise(ctx: RequestContext) -> bool:
    """Raising a limit above the platform default: a super admin, or the partner admin of this tenant's partner."""
    p = ctx.principal
    return p.is_super_admin or (p.is_partner_admin and p.partner_id is not None and p.partner_id == ctx.partner_id)


@router.put("", summary="Set or clear per-tenant limits (other API processes apply them within cache_seconds)",
            description="Each value is a positive integer up to the platform ceiling (`RATE_LIMIT_TENANT_CEILING`, "
                        "or the category's default when higher), or null to clear the override. A tenant admin "
                        "may lower limits and keep what was granted; raising a category above its default (and "
                        "above the tenant's current override) needs a super admin or the tenant's partner admin "
                        "(`403 forbidden`).")
async def put_limits(body: LimitsUpdate, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rate_limit_update", resource_type="rate_limits", resource_id=ctx.tenant_id)
    table = app_state(request).get("rate_limits")
    changes = {canonical(k): v for k, v in body.limits.items()}
    bad = []
    for k, v in changes.items():
        if k not in DEFAULT_LIMITS:
            bad.append({"field": f"limits.{k}", "message": "unknown category"})
        elif v is not None and v <= 0:
            bad.append({"field": f"limits.{k}", "message": "must be a positive integer or null"})
        elif v is not None and v > table.ceiling(k):
            bad.append({"field": f"limits.{k}", "message": f"must be at most {table.ceiling(k)} (the platform ceiling)"})
    if bad:
        raise AppError("validation_error", "invalid rate limits", {"fields": bad})
    state = app_state(request)
    await table.set_overrides(ctx, changes, state.get("audit"), may_raise=_may_raise(ctx))
    return await _view(request, ctx.tenant_id)
