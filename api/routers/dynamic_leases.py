"""Credentials and leases (lifecycle.md §4.4; docs/dynamic.md "Leases"):

``POST /v1/dynamic/engines/{engine}/creds/{role}`` issues a credential (in that response only);
``/v1/dynamic/leases``: list, read, renew, revoke, revoke by prefix.

Scopes (decision, docs/decisions.md): issuing and reading need ``dynamic:read``; renewing or revoking a lease
needs ``dynamic:manage`` or being the identity that generated it; revoke-prefix needs ``dynamic:manage``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from api.context import RequestContext
from api.deps import app_state, authorized
from api.responses import JSON
from core.cursor import decode_id_cursor, encode_id_cursor
from core.errors import AppError
from services.dynamic import leases as svc

router = APIRouter(tags=["dynamic"])
Generate = Annotated[RequestContext, Depends(authorized("dynamic:read", "dynamic_generate"))]
Reader = Annotated[RequestContext, Depends(authorized("dynamic:read", "list_operations"))]
LeaseOp = Annotated[RequestContext, Depends(authorized("dynamic:read", "lease_operations"))]
Manage = Annotated[RequestContext, Depends(authorized("dynamic:manage", "lease_operations"))]
JsonObject = Annotated[dict[str, Any], Body()]
OptionalJson = Annotated[dict[str, Any] | None, Body()]


@router.post("/v1/dynamic/engines/{engine}/creds/{role}", summary="Generate a credential (a new lease)",
             responses={503: {"description": "`service_unavailable` (`details.dependency: target`, `Retry-After`):"
                                             " the target could not be reached or dropped the connection; no"
                                             " credential was issued and none is left at the target; retry"}})
async def generate(engine: str, role: str, ctx: Generate, request: Request,
                   body: OptionalJson = None) -> dict[str, Any]:
    ctx.describe("dynamic_generate", resource_type="lease", resource_id=f"{engine}/{role}")
    return await svc.issue(app_state(request), ctx, engine, role, body or {})


@router.get("/v1/dynamic/leases", summary="List leases (filters engine, role, status)")
async def list_leases(ctx: Reader, request: Request, engine: str | None = None, role: str | None = None,
                      status: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("dynamic_lease_list", resource_type="lease")
    items, nxt = await svc.list_leases(app_state(request), ctx, engine=engine, role=role, status=status,
                                       after=decode_id_cursor(cursor, "lease_"), limit=limit)
    return {"leases": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.post("/v1/dynamic/leases/revoke-prefix", status_code=202, summary="Revoke every live lease of an engine"
             " (or engine/role)")
async def revoke_prefix(body: JsonObject, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_revoke", resource_type="lease")
    return await svc.revoke_prefix(app_state(request), ctx, body)


@router.get("/v1/dynamic/leases/{lease_id}", summary="One lease (never its credential)")
async def get_lease(lease_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_lease_read", resource_type="lease", resource_id=lease_id)
    return await svc.get(app_state(request), ctx, lease_id)


async def _owned(request: Request, ctx: RequestContext, lease_id: str) -> None:
    if ctx.principal.has_scope("dynamic:manage"):
        return
    lease = await svc.get(app_state(request), ctx, lease_id)
    if lease["created_by"] != ctx.principal.identity_id:
        raise AppError("insufficient_scope", "renewing or revoking another identity's lease needs dynamic:manage",
                       {"required_scope": "dynamic:manage"})


@router.post("/v1/dynamic/leases/{lease_id}/renew", summary="Renew a lease (bounded by its max_ttl)")
async def renew_lease(lease_id: str, ctx: LeaseOp, request: Request, body: OptionalJson = None) -> dict[str, Any]:
    ctx.describe("dynamic_renew", resource_type="lease", resource_id=lease_id)
    await _owned(request, ctx, lease_id)
    return await svc.renew(app_state(request), ctx, lease_id, body or {})


@router.post("/v1/dynamic/leases/{lease_id}/revoke", summary="Revoke a lease now (202 while the target fails)",
             responses={202: {"description": "queued: the target did not confirm yet; the revoker retries"}})
async def revoke_lease(lease_id: str, ctx: LeaseOp, request: Request) -> JSON:
    ctx.describe("dynamic_revoke", resource_type="lease", resource_id=lease_id)
    await _owned(request, ctx, lease_id)
    status, doc = await svc.revoke(app_state(request), ctx, lease_id)
    return JSON(doc, status_code=status)
