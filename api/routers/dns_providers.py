"""/v1/dns/providers: DNS providers for dns-01 (lifecycle.md §3.7; scope pki:admin). Credentials are sealed and
never echoed; ``verify`` (default true) refuses credentials that cannot list zones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from services.acme import providers as svc

router = APIRouter(prefix="/v1/dns/providers", tags=["acme"])
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body(examples=[{
    "name": "aws", "provider_type": "route53", "managed_zones": ["acme.example"], "verify": True,
    "credentials": {"access_key_id": "AKIA...", "secret_access_key": "...", "region": "us-east-1"}}])]


@router.post("", status_code=201, summary="Create a DNS provider (credentials sealed, never returned)")
async def create_provider(body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("dns_provider_create", resource_type="dns_provider")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, state.get("keyring"), body)


@router.get("", summary="List DNS providers")
async def list_providers(ctx: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("dns_provider_list", resource_type="dns_provider")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_page(conn, ctx.tenant_id, decode_id_cursor(cursor, "dnsp_"), limit)
    return {"providers": items, "cursor": encode_id_cursor(nxt),
            "has_more": nxt is not None}


@router.get("/{provider_id}", summary="One DNS provider (never its credentials)")
async def get_provider(provider_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("dns_provider_read", resource_type="dns_provider", resource_id=provider_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, provider_id))


@router.patch("/{provider_id}", summary="Update a DNS provider (new credentials are verified unless verify=false)")
async def update_provider(provider_id: str, body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("dns_provider_update", resource_type="dns_provider", resource_id=provider_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.update(conn, ctx, state.get("keyring"), provider_id, body)


@router.delete("/{provider_id}", status_code=204, summary="Delete a DNS provider no open or managed order uses")
async def delete_provider(provider_id: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("dns_provider_delete", resource_type="dns_provider", resource_id=provider_id)
    async with app_state(request).db.raw() as conn, conn.transaction():
        await svc.delete(conn, ctx.tenant_id, provider_id)
    return Response(status_code=204)


@router.post("/{provider_id}/test", summary="Test the credentials: zones visible and latency")
async def test_provider(provider_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("dns_provider_test", resource_type="dns_provider", resource_id=provider_id)
    state = app_state(request)
    async with state.db.raw() as conn:
        return await svc.test(conn, ctx, state.get("keyring"), provider_id)
