"""/v1/secret-policies: value-generation recipes, preview and server-side generation (spec core.md §10.7)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from core.errors import AppError
from services import policies as pol
from services import secret_policies as svc

router = APIRouter(prefix="/v1/secret-policies", tags=["secret-policies"])
Read = Annotated[RequestContext, Depends(authorized("policies:read", "policy_operations"))]
Write = Annotated[RequestContext, Depends(authorized("policies:write", "policy_operations"))]
Generate = Annotated[RequestContext, Depends(authorized("secrets:write", "write_secrets"))]
JsonObject = Annotated[dict[str, Any], Body()]


@router.get("", summary="List secret (value-generation) policies")
async def list_secret_policies(ctx: Read, request: Request, include_inactive: bool = False,
                               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                               cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("secret_policy_list", resource_type="secret_policy")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_policies(conn, ctx, include_inactive=include_inactive,
                                             after=pol.decode_cursor(cursor, "sp_"), limit=limit)
    return {"secret_policies": items, "cursor": pol.encode_cursor(nxt), "has_more": nxt is not None}


@router.post("", status_code=201, summary="Create a secret policy")
async def create_secret_policy(body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("secret_policy_create", resource_type="secret_policy")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, body, state.get("audit"))


@router.get("/{policy_id}", summary="One secret policy (static values redacted)")
async def get_secret_policy(policy_id: str, ctx: Read, request: Request) -> dict[str, Any]:
    ctx.describe("secret_policy_read", resource_type="secret_policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx, policy_id))


@router.put("/{policy_id}", summary="Replace a secret policy")
async def replace_secret_policy(policy_id: str, body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("secret_policy_update", resource_type="secret_policy", resource_id=policy_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.replace(conn, ctx, policy_id, body, state.get("audit"))


@router.patch("/{policy_id}", summary="Change any subset of a secret policy's fields")
async def patch_secret_policy(policy_id: str, body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("secret_policy_update", resource_type="secret_policy", resource_id=policy_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.patch(conn, ctx, policy_id, body, state.get("audit"))


@router.delete("/{policy_id}", status_code=204, summary="Delete a secret policy")
async def delete_secret_policy(policy_id: str, ctx: Write, request: Request) -> Response:
    ctx.describe("secret_policy_delete", resource_type="secret_policy", resource_id=policy_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        await svc.delete(conn, ctx, policy_id, state.get("audit"))
    return Response(status_code=204)


@router.post("/{policy_id}/preview", summary="Generate a sample (never stored; static values redacted)")
async def preview_secret_policy(policy_id: str, ctx: Read, request: Request) -> dict[str, Any]:
    ctx.describe("secret_policy_preview", resource_type="secret_policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        row = await svc.fetch(conn, ctx, policy_id)
    await app_state(request).get("audit").record(ctx, action="secret_policy_preview",
                                                 resource_type="secret_policy", resource_id=policy_id)
    return await svc.preview(row)


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=512)
    secret_type: str | None = Field(default=None, description="default from policy_type (ssh_key, api_key, else kv/json)")


@router.post("/{policy_id}/generate", status_code=201,
             summary="Write a generated version at a path; returns metadata only, never values")
async def generate_secret(policy_id: str, body: GenerateBody, ctx: Generate, request: Request) -> dict[str, Any]:
    state = app_state(request)
    ctx.describe("secret_generate", path=body.path, permission="write", resource_type="secret_policy",
                 resource_id=policy_id)
    path = pol.validate_path(body.path)
    if body.secret_type is not None and body.secret_type not in svc.SECRET_TYPES:
        raise AppError("invalid_secret_type", f"secret_type must be one of {list(svc.SECRET_TYPES)}",
                       {"field": "secret_type", "secret_type": body.secret_type})
    await state.get("access").check(ctx, path, "write")
    async with state.db.raw() as conn:
        row = await svc.fetch(conn, ctx, policy_id)
    if not row["is_active"]:
        raise AppError("conflict", "this secret policy is inactive", {"id": policy_id, "field": "is_active"})
    writer = svc.secret_writer()
    if writer is None:
        raise AppError("service_unavailable", "server-side generation needs the secrets feature, which is not"
                       " installed in this build", {"reason": "secret_writes_unavailable"})
    data = await svc.generate_values(svc.spec_of(row))
    meta = await writer(state, ctx, path=path, secret_type=body.secret_type or svc.default_secret_type(
        row["policy_type"]), data=data, secret_policy_id=policy_id)
    return {k: v for k, v in meta.items() if k not in {"data", "value", "values"}}
