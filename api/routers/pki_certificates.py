"""/v1/pki/certificates: issued certificates, their PEM, and revocation (spec lifecycle.md §3.4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from api.routers.pki_issue import services
from core.cursor import decode_id_cursor, encode_id_cursor
from services.pki import issuance as svc

router = APIRouter(prefix="/v1/pki/certificates", tags=["pki"])
Reader = Annotated[RequestContext, Depends(authorized("pki:issue", "pki_issue"))]
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body()]
OptionalJson = Annotated[dict[str, Any] | None, Body()]
PEM = "application/x-pem-file"


@router.get("", summary="List issued certificates")
async def list_certificates(ctx: Reader, request: Request, ca_id: str | None = None,
                            expiring_within: str | None = None, include_revoked: bool = False,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                            cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_certificate_list", resource_type="certificate")
    state = app_state(request)
    async with state.db.raw() as conn:
        items, nxt = await svc.list_certificates(
            conn, ctx, ca_id=ca_id, expiring_within=expiring_within, include_revoked=include_revoked,
            after=decode_id_cursor(cursor, "cert_"), limit=limit, base_url=state.settings.base_url)
    return {"certificates": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{cert_id}", summary="One issued certificate (metadata and PEM; never a private key)")
async def get_certificate(cert_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("pki_certificate_read", resource_type="certificate", resource_id=cert_id)
    state = app_state(request)
    async with state.db.raw() as conn:
        row = await svc.fetch(conn, ctx.tenant_id, cert_id)
    return {**svc.public(row, state.settings.base_url), "certificate": row["certificate_pem"]}


@router.get("/{cert_id}/pem", summary="The certificate as PEM", responses={200: {"content": {PEM: {}}}})
async def get_certificate_pem(cert_id: str, ctx: Reader, request: Request) -> Response:
    ctx.describe("pki_certificate_read", resource_type="certificate", resource_id=cert_id)
    async with app_state(request).db.raw() as conn:
        row = await svc.fetch(conn, ctx.tenant_id, cert_id)
    return Response(row["certificate_pem"], media_type=PEM)


@router.get("/{cert_id}/private-key", summary="The stored private key (roles with store_private_keys only; audited)")
async def get_private_key(cert_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_private_key_read", resource_type="certificate", resource_id=cert_id)
    async with app_state(request).db.raw() as conn:
        return await svc.private_key(conn, ctx, services(request), cert_id)


@router.post("/{cert_id}/revoke", summary="Revoke a certificate (RFC 5280 reason); the CA's CRL is rebuilt at once")
async def revoke_certificate(cert_id: str, ctx: Admin, request: Request,
                             body: OptionalJson = None) -> dict[str, Any]:
    ctx.describe("pki_revoke", resource_type="certificate", resource_id=cert_id)
    async with app_state(request).db.raw() as conn, conn.transaction():
        return await svc.revoke(conn, ctx, services(request), cert_id, body or {})
