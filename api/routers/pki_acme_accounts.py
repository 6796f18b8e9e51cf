"""/v1/pki/acme/accounts: ACME accounts (lifecycle.md §3.6; scope pki:admin). The account key is generated,
registered with the CA, stored sealed and never returned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from services.acme import accounts as svc

router = APIRouter(prefix="/v1/pki/acme/accounts", tags=["acme"])
Admin = Annotated[RequestContext, Depends(authorized("pki:admin", "pki_admin"))]
JsonObject = Annotated[dict[str, Any], Body(examples=[{"name": "le-staging", "provider": "letsencrypt",
                                                       "environment": "staging", "email": "ops@example.com"}])]


@router.post("", status_code=201, summary="Register an ACME account (the key is generated here and never returned)")
async def create_account(body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_acme_account_create", resource_type="acme_account")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, state.get("keyring"), state.settings.acme_ca_bundle or None, body)


@router.get("", summary="List ACME accounts")
async def list_accounts(ctx: Admin, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("pki_acme_account_list", resource_type="acme_account")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_page(conn, ctx.tenant_id, decode_id_cursor(cursor, "acmeacct_"), limit)
    return {"accounts": items, "cursor": encode_id_cursor(nxt),
            "has_more": nxt is not None}


@router.get("/{account_id}", summary="One ACME account (never its key)")
async def get_account(account_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("pki_acme_account_read", resource_type="acme_account", resource_id=account_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx.tenant_id, account_id))


@router.delete("/{account_id}", status_code=204, summary="Delete an ACME account that has no orders")
async def delete_account(account_id: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("pki_acme_account_delete", resource_type="acme_account", resource_id=account_id)
    async with app_state(request).db.raw() as conn, conn.transaction():
        await svc.delete(conn, ctx.tenant_id, account_id)
    return Response(status_code=204)
