"""/v1/identity: the ScaiKey identity cache (core.md §10.6), manual sync, and the ScaiKey webhook receiver."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from core.errors import AppError
from core.ids import new_id
from services.identity import cache as svc
from services.identity import webhooks as hooks

log = logging.getLogger("scaivault.identity")
router = APIRouter(prefix="/v1/identity", tags=["identity"])

Reader = Annotated[RequestContext, Depends(authorized("identity:read", "identity_read"))]
Syncer = Annotated[RequestContext, Depends(authorized("identity:admin", "identity_sync"))]
AnyToken = Annotated[RequestContext, Depends(authorized(None, "identity_read"))]
Page = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=500)]
UserStatus = Literal["ACTIVE", "SUSPENDED", "DELETED"]
MAX_WEBHOOK_BYTES = 1 << 20


async def _tenant(request: Request, ctx: RequestContext, tenant_id: str) -> str:
    """A tenant named in the path: the caller's own, or one it may switch to (403/404 like X-Tenant-ID)."""
    if tenant_id != ctx.tenant_id:
        await app_state(request).get("tenants").resolve(ctx.principal, tenant_id, None)
    return tenant_id


# --------------------------------------------------------------------------------------------- directory
@router.get("/partners", summary="Partners mirrored from ScaiKey")
async def partners(ctx: Reader, request: Request, status: str | None = None, page: Page = 1,
                   page_size: PageSize = 50) -> dict[str, Any]:
    ctx.describe("identity.partners.list", resource_type="partner")
    return await svc.list_partners(app_state(request).db, ctx, status=status, page=page, page_size=page_size)


@router.get("/tenants", summary="Tenants mirrored from ScaiKey")
async def tenants(ctx: Reader, request: Request, partner_id: str | None = None, status: str | None = None,
                  page: Page = 1, page_size: PageSize = 50) -> dict[str, Any]:
    ctx.describe("identity.tenants.list", resource_type="tenant")
    return await svc.list_tenants(app_state(request).db, ctx, partner_id=partner_id, status=status, page=page,
                                  page_size=page_size)


@router.get("/tenants/{tenant_id}/users", summary="A tenant's users (q searches email and name)")
async def users(tenant_id: str, ctx: Reader, request: Request, status: UserStatus | None = None,
                q: Annotated[str | None, Query(max_length=200)] = None, page: Page = 1,
                page_size: PageSize = 50) -> dict[str, Any]:
    ctx.describe("identity.users.list", resource_type="tenant", resource_id=tenant_id)
    tid = await _tenant(request, ctx, tenant_id)
    return await svc.list_users(app_state(request).db, tid, status=status, q=q, page=page, page_size=page_size)


@router.get("/tenants/{tenant_id}/groups", summary="A tenant's groups")
async def groups(tenant_id: str, ctx: Reader, request: Request,
                 q: Annotated[str | None, Query(max_length=200)] = None, page: Page = 1,
                 page_size: PageSize = 50) -> dict[str, Any]:
    ctx.describe("identity.groups.list", resource_type="tenant", resource_id=tenant_id)
    tid = await _tenant(request, ctx, tenant_id)
    return await svc.list_groups(app_state(request).db, tid, q=q, page=page, page_size=page_size)


@router.get("/groups/{group_id}/members", summary="Members of a group (effective tenant), DIRECT and NESTED")
async def members(group_id: str, ctx: Reader, request: Request, page: Page = 1,
                  page_size: PageSize = 50) -> dict[str, Any]:
    ctx.describe("identity.groups.members", resource_type="group", resource_id=group_id)
    return await svc.group_members(app_state(request).db, ctx.tenant_id, group_id, page=page, page_size=page_size)


@router.get("/resolve/{identity_type}/{identity_id}", summary="An identity and its group memberships")
async def resolve(identity_type: Literal["user", "group"], identity_id: str, ctx: Reader,
                  request: Request) -> dict[str, Any]:
    ctx.describe("identity.resolve", resource_type=identity_type, resource_id=identity_id)
    return await svc.resolve(app_state(request).db, ctx.tenant_id, identity_type, identity_id)


# --------------------------------------------------------------------------------------------- roles
@router.get("/roles", summary="Assignable admin roles")
async def roles(ctx: AnyToken) -> dict[str, Any]:
    ctx.describe("identity.roles.list")
    return svc.assignable_roles()


@router.get("/users/{user_id}/roles", summary="A user's admin role (effective tenant)")
async def user_roles(user_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("identity.roles.read", resource_type="identity_user", resource_id=user_id)
    return await svc.get_roles(app_state(request).db, ctx.tenant_id, user_id)


class RolesBody(BaseModel):
    roles: list[str] = Field(max_length=3)


@router.put("/users/{user_id}/roles", summary="Set a user's admin role (super_admin/partner_admin only)")
async def put_user_roles(user_id: str, body: RolesBody, ctx: AnyToken, request: Request) -> dict[str, Any]:
    ctx.describe("identity.roles.update", resource_type="identity_user", resource_id=user_id)
    state = app_state(request)
    out = await svc.put_roles(state.db, ctx, ctx.tenant_id, user_id, body.roles, state.get("audit"))
    enricher = state.components.get("identity_enricher")
    if enricher is not None:
        await enricher.publish(ctx.tenant_id)
    return out


# --------------------------------------------------------------------------------------------- sync
@router.post("/sync", status_code=202, summary="Sync from ScaiKey now (tenant, partner, or everything visible)")
async def sync(ctx: Syncer, request: Request, tenant_id: str | None = None,
               partner_id: str | None = None) -> dict[str, Any]:
    ctx.describe("identity.sync", resource_type="tenant", resource_id=tenant_id or partner_id)
    state = app_state(request)
    out = await svc.trigger_sync(state.db, state.temporal, state.settings, ctx, tenant_id=tenant_id,
                                 partner_id=partner_id, tenants=state.get("tenants"))
    await state.get("audit").record(ctx, action="identity.sync", resource_type="sync", resource_id=out["sync_id"])
    return out


@router.get("/sync/history", summary="Recent sync runs (one row per tenant and sync)")
async def sync_history(ctx: Reader, request: Request, tenant_id: str | None = None, page: Page = 1,
                       page_size: PageSize = 50) -> dict[str, Any]:
    ctx.describe("identity.sync.history")
    return await svc.sync_history(app_state(request).db, ctx, tenant_id=tenant_id, page=page, page_size=page_size)


@router.get("/sync/{sync_id}", summary="One sync: status, stats, per-tenant runs")
async def sync_status(sync_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("identity.sync.read", resource_type="sync", resource_id=sync_id)
    return await svc.get_sync(app_state(request).db, ctx, sync_id)


# --------------------------------------------------------------------------------------------- webhook
@router.post("/webhooks/scaikey", summary="ScaiKey webhook receiver (HMAC-signed, no bearer token)")
async def scaikey_webhook(request: Request) -> dict[str, Any]:
    state = app_state(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    # Refuse an unsigned delivery from its headers alone, before reading (buffering) its body.
    hooks.check_configured_and_signed(state.settings, headers.get("x-scaikey-signature"))
    raw = await request.body()  # bounded by api/body_limit.py (MAX_REQUEST_BODY_BYTES) as it streams
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise AppError("payload_too_large", "webhook body exceeds 1 MiB")
    hooks.verify(state.settings, raw, headers.get("x-scaikey-signature"), headers.get("x-scaikey-timestamp"))
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AppError("invalid_request", "webhook body is not valid JSON") from None
    event = hooks.normalize(body, headers)
    outcome = await hooks.apply(state.db, state.settings, event)
    if outcome.revoked_token_hashes:  # every API process drops them from its PAT cache at once
        authenticator = state.get("authenticator")
        for token_hash in outcome.revoked_token_hashes:
            await authenticator.broadcast_revocation(token_hash)
    if outcome.invalidate_tenant and event.tenant_id:
        state.get("tenants").invalidate(event.tenant_id)
        enricher = state.components.get("identity_enricher")
        if enricher is not None:
            await enricher.publish(event.tenant_id)
    if outcome.resync_reason and event.tenant_id and not outcome.duplicate:
        try:
            await svc.start_tenant_sync(state.temporal, state.settings, event.tenant_id, new_id("sync"),
                                        reason=outcome.resync_reason, trigger="webhook")
        except Exception as exc:  # the periodic sync catches up; never make ScaiKey retry for this
            log.warning("could not signal identity sync from webhook", extra={"error": str(exc)})
    return {"handled": outcome.handled, "duplicate": outcome.duplicate, "event_id": event.event_id,
            "event_type": event.event_type}
