"""/v1/dynamic/engines/{engine}/roles: credential recipes (lifecycle.md §4.3; docs/dynamic.md "Roles")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from services.dynamic import roles as svc

router = APIRouter(prefix="/v1/dynamic/engines/{engine}/roles", tags=["dynamic"])
Manage = Annotated[RequestContext, Depends(authorized("dynamic:manage", "dynamic_admin"))]
Reader = Annotated[RequestContext, Depends(authorized("dynamic:read", "list_operations"))]
JsonObject = Annotated[dict[str, Any], Body()]


@router.post("", status_code=201, summary="Create a role")
async def create_role(engine: str, body: JsonObject, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_role_create", resource_type="dynamic_role")
    return await svc.create(app_state(request), ctx, engine, body)


@router.get("", summary="List an engine's roles")
async def list_roles(engine: str, ctx: Reader, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("dynamic_role_list", resource_type="dynamic_role")
    items, nxt = await svc.list_roles(app_state(request), ctx, engine, after=decode_id_cursor(cursor, "dyr_"),
                                      limit=limit)
    return {"roles": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{name}", summary="One role")
async def get_role(engine: str, name: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_role_read", resource_type="dynamic_role", resource_id=f"{engine}/{name}")
    return await svc.get(app_state(request), ctx, engine, name)


@router.patch("/{name}", summary="Change any subset of a role's fields")
async def patch_role(engine: str, name: str, body: JsonObject, ctx: Manage, request: Request) -> dict[str, Any]:
    ctx.describe("dynamic_role_update", resource_type="dynamic_role", resource_id=f"{engine}/{name}")
    return await svc.patch(app_state(request), ctx, engine, name, body)


@router.delete("/{name}", status_code=204, summary="Delete a role (its leases keep their revocation)")
async def delete_role(engine: str, name: str, ctx: Manage, request: Request) -> Response:
    ctx.describe("dynamic_role_delete", resource_type="dynamic_role", resource_id=f"{engine}/{name}")
    await svc.delete(app_state(request), ctx, engine, name)
    return Response(status_code=204)
