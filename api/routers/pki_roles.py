"""/v1/pki/roles: what issue and sign may produce (spec lifecycle.md §3.3; docs/pki.md "Roles")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from services.pki import roles as svc

router = APIRouter(prefix="/v1/pki/roles", tags=["pki"])
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body()]


@router.post("", status_code=201, summary="Create a PKI role")
async def create_role(body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_role_create", resource_type="pki_role")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, body, state.get("audit"))


@router.get("", summary="List PKI roles")
async def list_roles(ctx: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_role_list", resource_type="pki_role")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_roles(conn, ctx, after=decode_id_cursor(cursor, "pkr_"), limit=limit)
    return {"roles": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{name}", summary="One PKI role")
async def get_role(name: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_role_read", resource_type="pki_role", resource_id=name)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, name))


@router.patch("/{name}", summary="Change any subset of a role's fields")
async def patch_role(name: str, body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_role_update", resource_type="pki_role", resource_id=name)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.patch(conn, ctx, name, body, state.get("audit"))


@router.delete("/{name}", status_code=204, summary="Delete a PKI role (issued certificates stay)")
async def delete_role(name: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("pki_role_delete", resource_type="pki_role", resource_id=name)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        await svc.delete(conn, ctx, name, state.get("audit"))
    return Response(status_code=204)
