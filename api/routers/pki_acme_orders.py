"""/v1/pki/acme/orders (scope pki:issue, rate category acme_order) and the managed certificates they create
(/v1/pki/acme/managed/{cert_id}: the renewal workflow's state and its renew/pause/resume signals, pki:admin).
The http-01 responses are served by api/routers/acme_challenge.py."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from core.errors import AppError
from services.acme import orders as svc
from services.acme import renewal
from workflows.types.acme import PAUSE_SIGNAL, RENEW_NOW_SIGNAL, RESUME_SIGNAL

router = APIRouter(prefix="/v1/pki/acme", tags=["acme"])
Issuer = Annotated[RequestContext, Depends(authorized("pki:issue", "acme_order"))]
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body(examples=[{
    "account_id": "acmeacct_01J...", "domains": ["acme.example", "*.acme.example"], "challenge_type": "dns-01",
    "key_type": "ec256", "auto_renew": True}])]
_SIGNALS = {"renew": RENEW_NOW_SIGNAL, "pause": PAUSE_SIGNAL, "resume": RESUME_SIGNAL}


@router.post("/orders", status_code=201, summary="Place an ACME order (worked by the certificate's renewal workflow)")
async def create_order(body: JsonObject, ctx: Issuer, request: Request) -> dict[str, Any]:
    ctx.describe("pki_acme_order_create", resource_type="acme_order")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        order = await svc.create(conn, ctx, body)
    try:
        await renewal.start(state.temporal, state.settings, ctx.tenant_id, order["managed_certificate_id"],
                            order["id"])
    except AppError as exc:
        async with state.db.raw() as conn:
            await svc.start_failed(conn, order["id"], exc)
        raise
    return order


@router.get("/orders", summary="List ACME orders")
async def list_orders(ctx: Issuer, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_acme_order_list", resource_type="acme_order")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_page(conn, ctx.tenant_id, decode_id_cursor(cursor, "acmeord_"), limit)
    return {"orders": items, "cursor": encode_id_cursor(nxt),
            "has_more": nxt is not None}


@router.get("/orders/{order_id}", summary="One ACME order: status, challenges and the error")
async def get_order(order_id: str, ctx: Issuer, request: Request) -> dict[str, Any]:
    ctx.describe("pki_acme_order_read", resource_type="acme_order", resource_id=order_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, order_id))


async def _managed(request: Request, ctx: RequestContext, cert_id: str) -> None:
    async with app_state(request).db.raw() as conn:
        await svc.check_managed(conn, ctx.tenant_id, cert_id)


@router.get("/managed/{cert_id}", summary="A managed certificate's renewal state (the workflow's state query)")
async def get_managed(cert_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_acme_managed_read", resource_type="certificate", resource_id=cert_id)
    await _managed(request, ctx, cert_id)
    state = app_state(request)
    st = await renewal.state(state.temporal, state.settings, ctx.tenant_id, cert_id)
    return {"id": cert_id, "workflow_id": renewal.workflow_id(state.settings, ctx.tenant_id, cert_id), **asdict(st)}


@router.post("/managed/{cert_id}/{action}", status_code=202,
             summary="Signal a managed certificate: renew (now), pause or resume its renewal")
async def signal_managed(cert_id: str, action: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_acme_managed_control", resource_type="certificate", resource_id=cert_id)
    if action not in _SIGNALS:
        raise AppError("not_found", f"unknown action '{action}'; use renew, pause or resume", {"action": action})
    await _managed(request, ctx, cert_id)
    state = app_state(request)
    await renewal.signal(state.temporal, state.settings, ctx.tenant_id, cert_id, _SIGNALS[action])
    return {"id": cert_id, "signal": _SIGNALS[action]}
