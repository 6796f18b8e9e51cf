"""/v1/pki/issue/{role} and /v1/pki/sign/{role} (spec lifecycle.md §3.4): scope ``pki:issue``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from api.context import RequestContext
from api.deps import app_state, authorized
from services.acme import renewal
from services.pki import issuance as svc

router = APIRouter(prefix="/v1/pki", tags=["pki"])
Issuer = Annotated[RequestContext, Depends(authorized("pki:issue", "pki_issue"))]
JsonObject = Annotated[dict[str, Any], Body()]


def services(request: Request) -> svc.Services:
    state = app_state(request)
    return svc.Services(keyring=state.get("keyring"), audit=state.get("audit"), base_url=state.settings.base_url)


@router.post("/issue/{role}", summary="Issue a certificate with a server-generated key (the key is in this response"
                                      " only, unless the role stores keys); auto_renew: true renews it by itself")
async def issue(role: str, body: JsonObject, ctx: Issuer, request: Request) -> dict[str, Any]:
    ctx.describe("pki_issue", resource_type="pki_role", resource_id=role)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        out = await svc.issue(conn, ctx, services(request), role, body)
        renew = out.pop("_renew", None)
        if renew is not None:  # inside the transaction: no workflow, no certificate (503, nothing issued)
            await renewal.start_internal(state.temporal, state.settings, ctx.tenant_id, renew[0], renew[1])
        return out


@router.post("/sign/{role}", summary="Sign a CSR against a role (key type and names checked)")
async def sign(role: str, body: JsonObject, ctx: Issuer, request: Request) -> dict[str, Any]:
    ctx.describe("pki_sign", resource_type="pki_role", resource_id=role)
    async with app_state(request).db.raw() as conn, conn.transaction():
        return await svc.sign(conn, ctx, services(request), role, body)
