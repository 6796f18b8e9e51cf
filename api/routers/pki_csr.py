"""/v1/pki/csr: submit a CSR for approval (``pki:issue``); approve or reject it (``pki:admin``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from api.context import RequestContext
from api.deps import app_state, authorized
from api.routers.pki_issue import services
from core.cursor import decode_id_cursor, encode_id_cursor
from services.pki import csr as svc

router = APIRouter(prefix="/v1/pki/csr", tags=["pki"])
Requester = Annotated[RequestContext, Depends(authorized("pki:issue", "pki_issue"))]
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body()]
OptionalJson = Annotated[dict[str, Any] | None, Body()]


@router.post("", status_code=201, summary="Submit a CSR for approval against a role")
async def submit_csr(body: JsonObject, ctx: Requester, request: Request) -> dict[str, Any]:
    ctx.describe("pki_csr_submit", resource_type="pki_csr")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.submit(conn, ctx, body, state.get("audit"))


@router.get("", summary="List CSRs (optionally by status)")
async def list_csrs(ctx: Admin, request: Request, status: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_csr_list", resource_type="pki_csr")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_csrs(conn, ctx, status=status, after=decode_id_cursor(cursor, "csr_"), limit=limit)
    return {"csrs": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{csr_id}", summary="One CSR and its decision")
async def get_csr(csr_id: str, ctx: Requester, request: Request) -> dict[str, Any]:
    ctx.describe("pki_csr_read", resource_type="pki_csr", resource_id=csr_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, csr_id))


@router.post("/{csr_id}/approve", summary="Approve a pending CSR: it is signed against its role")
async def approve_csr(csr_id: str, ctx: Admin, request: Request, body: OptionalJson = None) -> dict[str, Any]:
    ctx.describe("pki_csr_approve", resource_type="pki_csr", resource_id=csr_id)
    async with app_state(request).db.raw() as conn, conn.transaction():
        return await svc.approve(conn, ctx, services(request), csr_id, body or {})


@router.post("/{csr_id}/reject", summary="Reject a pending CSR")
async def reject_csr(csr_id: str, ctx: Admin, request: Request, body: OptionalJson = None) -> dict[str, Any]:
    ctx.describe("pki_csr_reject", resource_type="pki_csr", resource_id=csr_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.reject(conn, ctx, csr_id, body or {}, state.get("audit"))
