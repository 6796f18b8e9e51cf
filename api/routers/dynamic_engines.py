"""/v1/dynamic/engines: dynamic-credential engines (lifecycle.md §4.2; docs/dynamic.md "Engines")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from services.dynamic import engines as svc

router = APIRouter(prefix="/v1/dynamic/engines", tags=["dynamic"])
Manage = Annotated[RequestContext, Depends(authorized("dynamic:manage", "dynamic_admin"))]
Reader = Annotated[RequestContext, Depends(authorized("dynamic:read", "list_operations"))]
JsonObject = Annotated[dict[str, Any], Body()]


@router.post("", status_code=201, summary="Create an engine (opens a test connection)")
async def create_engine(body: JsonObject, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_engine_create", resource_type="dynamic_engine")
    return await svc.create(app_state(request), ctx, body)


@router.get("", summary="List engines")
async def list_engines(ctx: Reader, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("dynamic_engine_list", resource_type="dynamic_engine")
    items, nxt = await svc.list_engines(app_state(request), ctx, after=decode_id_cursor(cursor, "dyn_"), limit=limit)
    return {"engines": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{name}", summary="One engine with its live connection_status")
async def get_engine(name: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_engine_read", resource_type="dynamic_engine", resource_id=name)
    return await svc.get(app_state(request), ctx, name)


@router.patch("/{name}", summary="Change an engine's config or TTLs (re-tests the connection)")
async def patch_engine(name: str, body: JsonObject, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_engine_update", resource_type="dynamic_engine", resource_id=name)
    return await svc.patch(app_state(request), ctx, name, body)


@router.delete("/{name}", status_code=204, summary="Delete an engine (refused with live leases unless"
               " revoke_leases=true)")
async def delete_engine(name: str, ctx: Manage, request: Request, revoke_leases: bool = False) -> Response:
    ctx.describe("dynamic_engine_delete", resource_type="dynamic_engine", resource_id=name)
    await svc.delete(app_state(request), ctx, name, revoke_leases=revoke_leases)
    return Response(status_code=204)


@router.post("/{name}/rotate-root", summary="Rotate the engine's root password (set at the source, then stored)")
async def rotate_root(name: str, ctx: Manage, request: Request) -> dict[str, Any]:
    from services.dynamic import root

    ctx.describe("dynamic_root_rotate", resource_type="dynamic_engine", resource_id=name)
    return await root.rotate_root(app_state(request), ctx, name)


async def _set_paused(request: Request, ctx: RequestContext, name: str, paused: bool) -> dict[str, Any]:
    state = app_state(request)
    await svc.set_paused(state, ctx, name, paused)
    return await svc.get(state, ctx, name)


@router.post("/{name}/revocation/pause", summary="Pause revocation for this engine (e.g. during a target restore)")
async def pause_revocation(name: str, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_engine_update", resource_type="dynamic_engine", resource_id=name)
    return await _set_paused(request, ctx, name, True)


@router.post("/{name}/revocation/resume", summary="Resume revocation; the backlog drains under the rate limit")
async def resume_revocation(name: str, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_engine_update", resource_type="dynamic_engine", resource_id=name)
    return await _set_paused(request, ctx, name, False)
