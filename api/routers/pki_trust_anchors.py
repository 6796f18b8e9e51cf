"""/v1/pki/trust-anchors: external CA certificates a tenant trusts (scope ``pki:admin``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from services.pki import trust_anchors as svc

router = APIRouter(prefix="/v1/pki/trust-anchors", tags=["pki"])
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body()]


@router.post("", status_code=201, summary="Add a trust anchor (a CA certificate)")
async def create_trust_anchor(body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_trust_anchor_create", resource_type="pki_trust_anchor")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, body, state.get("audit"))


@router.get("", summary="List trust anchors")
async def list_trust_anchors(ctx: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                             cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_trust_anchor_list", resource_type="pki_trust_anchor")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_anchors(conn, ctx, after=decode_id_cursor(cursor, "ta_"), limit=limit)
    return {"trust_anchors": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{anchor_id}", summary="One trust anchor")
async def get_trust_anchor(anchor_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_trust_anchor_read", resource_type="pki_trust_anchor", resource_id=anchor_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, anchor_id))


@router.delete("/{anchor_id}", status_code=204, summary="Remove a trust anchor")
async def delete_trust_anchor(anchor_id: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("pki_trust_anchor_delete", resource_type="pki_trust_anchor", resource_id=anchor_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        await svc.delete(conn, ctx, anchor_id, state.get("audit"))
    return Response(status_code=204)
