"""/v1/policies: access-policy CRUD, bindings and the dry run (spec core.md §7, §10.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from api.state import AppState
from services import policies as svc

router = APIRouter(prefix="/v1/policies", tags=["policies"])
Read = Annotated[RequestContext, Depends(authorized("policies:read", "policy_operations"))]
Write = Annotated[RequestContext, Depends(authorized("policies:write", "policy_operations"))]
TestCtx = Annotated[RequestContext, Depends(authorized("policies:read", "policy_test"))]
JsonObject = Annotated[dict[str, Any], Body()]


@asynccontextmanager
async def _tx(state: AppState) -> AsyncIterator[asyncpg.Connection]:
    async with state.db.raw() as conn, conn.transaction():
        yield conn


async def _after_commit(state: AppState, change: svc.Change) -> None:
    """Every process drops the affected compiled index (policy.* change, binding change)."""
    access = state.get("access")
    invalidate = getattr(access, "invalidate", None)
    if invalidate is not None:
        await invalidate(change.tenant_id, change.partner_id)


async def _write(request: Request, fn: Any, *args: Any) -> svc.Change:
    state = app_state(request)
    async with _tx(state) as conn:
        change: svc.Change = await fn(conn, *args)
    await _after_commit(state, change)
    return change


# --- dry run (before /{policy_id} so it is never taken for an id) ----------------------------------


class TestContext(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_ip: str | None = Field(default=None, max_length=64)
    mfa_verified: bool = False
    timestamp: datetime | None = Field(default=None, description="evaluation time; default now")


class PolicyTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identity_id: str = Field(pattern=r"^(user|sa|group):\S{1,318}$", examples=["user:alice@acme.example"])
    path: str = Field(min_length=1, max_length=512)
    permission: Literal["read", "write", "delete", "list", "rotate", "admin"]
    context: TestContext = Field(default_factory=TestContext)
    groups: list[str] | None = Field(default=None, max_length=256,
                                     description="the groups claim of the tested identity's token (the dry run "
                                     "cannot see another identity's token); groups from the identity cache are "
                                     "always added. Default: none, or the caller's own token groups when it "
                                     "tests itself")
    scope: Literal["tenant", "partner"] = "tenant"


@router.post("/test", summary="Dry-run a permission check: the decision and why (no audit entry)")
async def test_policy(body: PolicyTest, ctx: TestCtx, request: Request) -> dict[str, Any]:
    ctx.audited = True  # spec §7.6: the dry run writes no audit entry (audit contract: audited means done)
    state = app_state(request)
    path = svc.validate_path(body.path)
    enricher = state.components.get("identity_enricher")
    tested = await svc.tested_identity(ctx, body.identity_id, body.groups,
                                       enricher.lookup if enricher is not None else None)
    index = await state.get("access").index_for(ctx.tenant_id, ctx.partner_id, scope=body.scope)
    decision = svc.dry_run(index, tested.ids, path, body.permission, source_ip=body.context.source_ip,
                           mfa_verified=body.context.mfa_verified, timestamp=body.context.timestamp)
    out = {**tested.to_dict(), **decision.to_dict()}
    if tested.refused is not None:  # refused before policy evaluation, as a real request would be
        out.update(allowed=False, code=tested.refused.code, reason=tested.refused.details["reason"],
                   matched_policy=None, matched_rule=None, failed_condition=None)
    return out


# --- policies ------------------------------------------------------------------------------------


@router.get("", summary="List policies (tenant and partner scope)")
async def list_policies(
    ctx: Read, request: Request, scope: Literal["tenant", "partner"] | None = None,
    include_inactive: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None,
) -> dict[str, Any]:
    ctx.describe("policy_list", resource_type="policy")
    async with app_state(request).db.raw() as conn:
        return await svc.list_policies(conn, ctx, scope=scope, include_inactive=include_inactive, cursor=cursor,
                                       limit=limit)


@router.post("", status_code=201, summary="Create a policy")
async def create_policy(body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("policy_create", resource_type="policy")
    change = await _write(request, svc.create, ctx, body, app_state(request).get("audit"))
    return change.result or {}


@router.get("/{policy_id}", summary="One policy with its rules and bindings")
async def get_policy(policy_id: str, ctx: Read, request: Request) -> dict[str, Any]:
    ctx.describe("policy_read", resource_type="policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        return await svc.get_policy(conn, ctx, policy_id)


@router.put("/{policy_id}", summary="Replace name, description and rules (bindings are kept)")
async def replace_policy(policy_id: str, body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("policy_update", resource_type="policy", resource_id=policy_id)
    change = await _write(request, svc.replace, ctx, policy_id, body, app_state(request).get("audit"))
    return change.result or {}


@router.patch("/{policy_id}", summary="Change any subset of name, description, rules, is_active")
async def patch_policy(policy_id: str, body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("policy_update", resource_type="policy", resource_id=policy_id)
    change = await _write(request, svc.patch, ctx, policy_id, body, app_state(request).get("audit"))
    return change.result or {}


@router.delete("/{policy_id}", status_code=204, summary="Delete a policy (409 policy_in_use unless force=true)")
async def delete_policy(policy_id: str, ctx: Write, request: Request, force: bool = False) -> Response:
    ctx.describe("policy_delete", resource_type="policy", resource_id=policy_id)
    audit = app_state(request).get("audit")
    await _write(request, lambda conn, *a: svc.delete(conn, *a, force=force, audit=audit), ctx, policy_id)
    return Response(status_code=204)


# --- bindings ------------------------------------------------------------------------------------


@router.get("/{policy_id}/bindings", summary="Bindings of a policy (expired ones flagged)")
async def list_bindings(policy_id: str, ctx: Read, request: Request) -> dict[str, Any]:
    ctx.describe("policy_read", resource_type="policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        return await svc.list_bindings(conn, ctx, policy_id)


@router.post("/{policy_id}/bindings", status_code=201, summary="Bind the policy to a user, service account or group")
async def create_binding(policy_id: str, body: JsonObject, ctx: Write, request: Request) -> dict[str, Any]:
    ctx.describe("policy_bind", resource_type="policy", resource_id=policy_id)
    change = await _write(request, svc.create_binding, ctx, policy_id, body, app_state(request).get("audit"))
    return change.result or {}


@router.delete("/{policy_id}/bindings/{binding_id}", status_code=204, summary="Remove a binding")
async def delete_binding(policy_id: str, binding_id: str, ctx: Write, request: Request) -> Response:
    ctx.describe("policy_unbind", resource_type="policy", resource_id=policy_id)
    await _write(request, svc.delete_binding, ctx, policy_id, binding_id, app_state(request).get("audit"))
    return Response(status_code=204)
