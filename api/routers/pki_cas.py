"""/v1/pki/ca: certificate authorities (spec lifecycle.md §3.2; docs/pki.md).

``GET /v1/pki/ca/{id}/crl`` is the one unauthenticated PKI route: relying parties fetch CRLs without a token. The
CA id (a random ULID) is the capability; a ``/v1/t/{tenant}`` prefix that names another tenant answers exactly as a
missing CA. It is rate-limited per client address like the other public routes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from api.routers.health import Public
from core.cursor import decode_id_cursor, encode_id_cursor
from services.pki import ca as svc
from services.pki import crl as crl_svc
from services.pki.common import iso

router = APIRouter(prefix="/v1/pki/ca", tags=["pki"])
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
AnyToken = Annotated[RequestContext, Depends(authorized(None, "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body()]
OptionalJson = Annotated[dict[str, Any] | None, Body()]
PEM = "application/x-pem-file"
_PEM_RESPONSE = {"content": {PEM: {"schema": {"type": "string"}}}}
_CRL_RESPONSE: dict[int | str, dict[str, Any]] = {"200": {"description": "The CA's current CRL: DER (`application/pkix-crl`, the default) or PEM "
                                        "(`Accept: application/x-pem-file`)",
                         "content": {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}},
                                     PEM: {"schema": {"type": "string"}}}},
                 "404": {"description": "Unknown CA (`ca_not_found`)"},
                 "429": {"description": "Too many requests from this address (`rate_limited`)"}}


def wants_pem(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return PEM in accept or "application/x-pem" in accept or "text/plain" in accept


@router.post("", status_code=201, summary="Create a root or intermediate CA (its key never leaves the server)")
async def create_ca(body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_ca_create", resource_type="pki_ca")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, body, keyring=state.get("keyring"), audit=state.get("audit"),
                                base_url=state.settings.base_url)


@router.get("", summary="List CAs")
async def list_cas(ctx: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_ca_list", resource_type="pki_ca")
    state = app_state(request)
    async with state.db.raw() as conn:
        items, nxt = await svc.list_cas(conn, ctx, after=decode_id_cursor(cursor, "ca_"), limit=limit,
                                        base_url=state.settings.base_url)
    return {"cas": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/{ca_id}", summary="One CA")
async def get_ca(ca_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_ca_read", resource_type="pki_ca", resource_id=ca_id)
    state = app_state(request)
    async with state.db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, ca_id), state.settings.base_url)


@router.get("/{ca_id}/certificate", summary="The CA certificate: JSON {certificate_pem, ca_chain}, or raw PEM by Accept",
            responses={200: _PEM_RESPONSE})
async def get_ca_certificate(ca_id: str, ctx: AnyToken, request: Request) -> Any:
    ctx.describe("pki_ca_certificate", resource_type="pki_ca", resource_id=ca_id)
    async with app_state(request).db.raw() as conn:
        row = await svc.fetch(conn, ctx.tenant_id, ca_id)
        chain = await svc.chain_pems(conn, ctx.tenant_id, row)
    if wants_pem(request):
        return Response(row["certificate_pem"], media_type=PEM)
    return {"id": row["id"], "certificate_pem": row["certificate_pem"], "ca_chain": chain}


@router.post("/{ca_id}/revoke", summary="Revoke a CA and everything under it (child CAs and their certificates)")
async def revoke_ca(ca_id: str, ctx: Admin, request: Request, body: OptionalJson = None) -> dict[str, Any]:
    ctx.describe("pki_revoke", resource_type="pki_ca", resource_id=ca_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.revoke(conn, ctx, ca_id, body or {}, keyring=state.get("keyring"), audit=state.get("audit"),
                                base_url=state.settings.base_url)


@router.post("/{ca_id}/crl", summary="Rebuild the CA's CRL now; returns the PEM and the next update")
async def rebuild_crl(ca_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_crl_rebuild", resource_type="pki_ca", resource_id=ca_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        row = await svc.fetch(conn, ctx.tenant_id, ca_id, for_update=True)
        issuer = await crl_svc.load_issuer(conn, state.get("keyring"), state.settings.base_url, ctx.tenant_id,
                                           ctx.partner_id, row)
        der, next_update = await crl_svc.rebuild(conn, issuer, ctx.tenant_id, ca_id)
        await state.get("audit").record(ctx, action="pki_crl_rebuild", resource_type="pki_ca", resource_id=ca_id,
                                        conn=conn)
    return {"ca_id": ca_id, "crl_pem": crl_svc.to_pem(der), "next_update": iso(next_update)}


@router.get("/{ca_id}/crl", summary="The CA's current CRL (no token; DER or PEM by Accept)", responses=_CRL_RESPONSE,
            dependencies=[Public])
async def get_crl(ca_id: str, request: Request) -> Response:
    async with app_state(request).db.raw() as conn:
        der = await crl_svc.public_crl(conn, ca_id, request.scope["state"].get("path_tenant"))
    if wants_pem(request):
        return Response(crl_svc.to_pem(der), media_type=PEM)
    return Response(der, media_type="application/pkix-crl")
