"""/v1/auth: whoami, introspect, and personal access tokens (/v1/auth/tokens)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from core.errors import AppError
from services import pats

router = APIRouter(prefix="/v1/auth", tags=["auth"])
AnyToken = Annotated[RequestContext, Depends(authorized(None, "auth"))]
AdminToken = Annotated[RequestContext, Depends(authorized("admin", "auth"))]


def _iso(dt: Any) -> str | None:
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


@router.get("/whoami", summary="How ScaiVault sees the caller")
async def whoami(ctx: AnyToken) -> dict[str, Any]:
    ctx.describe("whoami")
    p = ctx.principal
    return {
        "identity_id": p.identity_id, "identity_type": p.identity_type, "display_name": p.display_name,
        "tenant_id": ctx.tenant_id, "partner_id": ctx.partner_id, "scopes": sorted(p.scopes),
        "groups": list(p.groups), "roles": list(p.roles), "mfa_verified_at": _iso(p.mfa_verified_at),
        "token_expires_at": _iso(p.expires_at), "token_type": p.token_kind,
    }


class IntrospectBody(BaseModel):
    token: str = Field(min_length=1, max_length=16384)


@router.post("/introspect", summary="Validate any token (admin); invalid or expired gives {active: false}")
async def introspect(body: IntrospectBody, ctx: AdminToken, request: Request) -> dict[str, Any]:
    ctx.describe("introspect", resource_type="token")
    authenticator = app_state(request).get("authenticator")
    try:
        p = await authenticator.authenticate(body.token)
    except AppError:
        return {"active": False}
    return {"active": True, "identity_id": p.identity_id, "identity_type": p.identity_type,
            "tenant_id": p.tenant_id, "scopes": sorted(p.scopes), "expires_at": _iso(p.expires_at),
            "issued_at": _iso(p.issued_at)}


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=32)
    expires_in: str | None = Field(default=None, description="duration such as 30d; default 90d")


@router.post("/tokens", status_code=201, summary="Create a personal access token (shown once)")
async def create_token(body: TokenCreate, ctx: AnyToken, request: Request) -> dict[str, Any]:
    ctx.describe("token_create", resource_type="token")
    state = app_state(request)
    auth = state.get("authenticator")
    return await pats.create(state.db, ctx, name=body.name, scopes=body.scopes, expires_in=body.expires_in,
                             hasher=auth.hash, default_ttl_days=state.settings.pat_default_ttl_days,
                             audit=state.get("audit"))


@router.get("/tokens", summary="List your personal access tokens (all=true with admin scope: the tenant's)")
async def list_tokens(ctx: AnyToken, request: Request, all: bool = False,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("token_list", resource_type="token")
    rows, nxt = await pats.list_tokens(app_state(request).db, ctx, all_identities=all, cursor=decode_id_cursor(cursor, "pat_"),
                                       limit=limit)
    return {"tokens": [pats.public(r) for r in rows], "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.get("/tokens/{token_id}", summary="One personal access token (never its value)")
async def get_token(token_id: str, ctx: AnyToken, request: Request) -> dict[str, Any]:
    ctx.describe("token_read", resource_type="token", resource_id=token_id)
    return pats.public(await pats.get(app_state(request).db, ctx, token_id))


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token; takes effect in every process")
async def revoke_token(token_id: str, ctx: AnyToken, request: Request) -> Response:
    ctx.describe("token_revoke", resource_type="token", resource_id=token_id)
    state = app_state(request)
    token_hash = await pats.revoke(state.db, ctx, token_id, audit=state.get("audit"))
    await state.get("authenticator").broadcast_revocation(token_hash)
    return Response(status_code=204)
