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
            "cache_seconds": app_state(request).settings.rate_limit_tenant_cache_seconds}


@router.get("", summary="Defaults, the tenant's overrides and the effective limits")
async def get_limits(ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rate_limit_read", resource_type="rate_limits", resource_id=ctx.tenant_id)
    return await _view(request, ctx.tenant_id)


@router.put("", summary="Set or clear per-tenant limits (other API processes apply them within cache_seconds)")
async def put_limits(body: LimitsUpdate, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rate_limit_update", resource_type="rate_limits", resource_id=ctx.tenant_id)
    changes = {canonical(k): v for k, v in body.limits.items()}
    bad = [{"field": f"limits.{k}", "message": "unknown category" if k not in DEFAULT_LIMITS
            else "must be a positive integer or null"}
           for k, v in changes.items() if k not in DEFAULT_LIMITS or (v is not None and v <= 0)]
    if bad:
        raise AppError("validation_error", "invalid rate limits", {"fields": bad})
    state = app_state(request)
    await state.get("rate_limits").set_overrides(ctx, changes, state.get("audit"))
    return await _view(request, ctx.tenant_id)
