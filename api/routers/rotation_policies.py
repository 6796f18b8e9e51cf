"""/v1/rotation: rotation policies, attachments, manual rotation, history, the due list (lifecycle.md §1.4).

After each committed change the affected per-secret workflows are signalled (``services.rotation.schedule``):
``reschedule`` for policy edits, enable/disable, attach; ``rotate_now`` for manual rotations.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.context import RequestContext
from api.deps import app_state, authorized
from core.cursor import decode_id_cursor, encode_id_cursor
from core.errors import AppError
from services.rotation import policies as svc
from services.rotation.schedule import notify
from workflows.types.rotation import RotateNow

router = APIRouter(prefix="/v1/rotation", tags=["rotation"])
Admin = Annotated[RequestContext, Depends(authorized("admin", "admin_operations"))]
Rotate = Annotated[RequestContext, Depends(authorized("secrets:rotate", "write_secrets"))]
History = Annotated[RequestContext, Depends(authorized("audit:read", "audit_queries"))]
DueList = Annotated[RequestContext, Depends(authorized("secrets:rotate", "list_operations"))]
JsonObject = Annotated[dict[str, Any], Body()]


async def _wake(request: Request, ctx: RequestContext, secret_ids: list[int], reason: str) -> None:
    s = app_state(request)
    await notify(s.db, s.temporal, s.settings, ctx.tenant_id, secret_ids, reason=reason)


@router.get("/policies", summary="List rotation policies")
async def list_rotation_policies(ctx: Admin, request: Request, active_only: bool = False,
                                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                                 cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("rotation_policy_list", resource_type="rotation_policy")
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.list_policies(conn, ctx, active_only=active_only,
                                             after=decode_id_cursor(cursor, "rot_"), limit=limit)
    return {"data": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


@router.post("/policies", status_code=201, summary="Create a rotation policy")
async def create_rotation_policy(body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rotation_policy_create", resource_type="rotation_policy")
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        return await svc.create(conn, ctx, body, state.get("audit"))


@router.get("/policies/{policy_id}", summary="One rotation policy")
async def get_rotation_policy(policy_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rotation_policy_read", resource_type="rotation_policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        return svc.public(await svc.fetch(conn, ctx, policy_id))


async def _patch(request: Request, ctx: RequestContext, policy_id: str, body: dict[str, Any],
                 action: str) -> dict[str, Any]:
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        doc, attached = await svc.patch(conn, ctx, policy_id, body, state.get("audit"), action=action)
    await _wake(request, ctx, attached, action)
    return doc


@router.patch("/policies/{policy_id}", summary="Change any subset of a rotation policy's fields; every attached "
              "secret's timers move at once")
async def patch_rotation_policy(policy_id: str, body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rotation_policy_update", resource_type="rotation_policy", resource_id=policy_id)
    return await _patch(request, ctx, policy_id, body, "rotation_policy_update")


@router.delete("/policies/{policy_id}", status_code=204, summary="Delete a rotation policy (secrets are detached)")
async def delete_rotation_policy(policy_id: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("rotation_policy_delete", resource_type="rotation_policy", resource_id=policy_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        detached = await svc.delete(conn, ctx, policy_id, state.get("audit"))
    await _wake(request, ctx, detached, "policy_deleted")
    return Response(status_code=204)


@router.post("/policies/{policy_id}/enable", summary="Resume a paused policy (a missed rotation fires at once)")
async def enable_rotation_policy(policy_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rotation_policy_enable", resource_type="rotation_policy", resource_id=policy_id)
    return await _patch(request, ctx, policy_id, {"is_active": True}, "rotation_policy_enable")


@router.post("/policies/{policy_id}/disable", summary="Pause a policy: timers stop, attachments and anchors kept")
async def disable_rotation_policy(policy_id: str, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rotation_policy_disable", resource_type="rotation_policy", resource_id=policy_id)
    return await _patch(request, ctx, policy_id, {"is_active": False}, "rotation_policy_disable")


@router.post("/policies/{policy_id}/secrets", status_code=201, summary="Attach a secret")
async def attach_secret(policy_id: str, body: JsonObject, ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("rotation_policy_attach", resource_type="rotation_policy", resource_id=policy_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        doc, secret_id = await svc.attach(conn, ctx, policy_id, body, state.get("audit"), state.get("access"))
    await state.components["secrets"].changed(_owner(ctx))
    await _wake(request, ctx, [secret_id], "attached")
    return doc


@router.delete("/policies/{policy_id}/secrets/{secret_path:path}", status_code=204,
               summary="Detach a secret (its path URL-encoded as one segment, or raw)")
async def detach_secret(policy_id: str, secret_path: str, ctx: Admin, request: Request) -> Response:
    ctx.describe("rotation_policy_detach", resource_type="rotation_policy", resource_id=policy_id)
    state = app_state(request)
    async with state.db.raw() as conn, conn.transaction():
        secret_id = await svc.detach(conn, ctx, policy_id, secret_path, state.get("audit"), state.get("access"))
    await state.components["secrets"].changed(_owner(ctx))
    await _wake(request, ctx, [secret_id], "detached")
    return Response(status_code=204)


def _owner(ctx: RequestContext) -> Any:
    from auth.tenancy import UNASSIGNED_PARTNER
    from repositories.secrets import Owner

    return Owner("tenant", ctx.tenant_id, ctx.partner_id or UNASSIGNED_PARTNER)


async def rotate_paths(request: Request, ctx: RequestContext, policy_id: str,
                       paths: list[str] | None) -> list[dict[str, Any]]:
    """Pending history rows (one per attached secret, or per named path) + ``rotate_now`` to each workflow."""
    state = app_state(request)
    access = state.get("access")
    async with state.db.raw() as conn, conn.transaction():
        if paths is not None:  # named paths: each needs rotate (denied answers like missing)
            for p in paths:
                await access.check(ctx, svc.inp.check_path(p), "rotate")
        else:  # all attached: those the caller may rotate (the others stay unnamed, as in list filtering)
            paths = await access.filter(ctx, await svc.attached_paths(conn, ctx, policy_id), "rotate")
            if not paths:
                return []
        items = await svc.start_manual(conn, ctx, policy_id, paths, state.get("audit"))
    await notify(state.db, state.temporal, state.settings, ctx.tenant_id, [sid for _, sid in items],
                 reason="rotate_now", rotate={sid: RotateNow(history_id=doc["id"]) for doc, sid in items}, strict=True)
    return [doc for doc, _ in items]


@router.post("/policies/{policy_id}/rotate", summary="Rotate now: all attached secrets, or {\"secret_paths\": [...]}")
async def rotate_policy(policy_id: str, ctx: Rotate, request: Request,
                        body: Annotated[dict[str, Any] | None, Body()] = None) -> list[dict[str, Any]]:
    ctx.describe("rotate", resource_type="rotation_policy", resource_id=policy_id, permission="rotate")
    paths = None
    if body:
        svc.inp.reject_unknown(body, {"secret_paths"})
        raw = body.get("secret_paths")
        if raw is not None:
            if not isinstance(raw, list) or not raw or len(raw) > 1000 or not all(isinstance(p, str) for p in raw):
                raise AppError("validation_error", "secret_paths must be a non-empty list of paths", {"fields": [
                    {"field": "secret_paths", "message": "must be a non-empty list of at most 1000 paths"}]})
            paths = list(dict.fromkeys(raw))
    return await rotate_paths(request, ctx, policy_id, paths)


@router.get("/policies/{policy_id}/history", summary="Rotation log of a policy")
async def rotation_history(policy_id: str, ctx: History, request: Request, status: str | None = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                           cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("rotation_history", resource_type="rotation_policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        items, nxt = await svc.history(conn, ctx, policy_id, status=status, after=decode_id_cursor(cursor, "rh_"),
                                       limit=limit)
    return {"data": items, "cursor": encode_id_cursor(nxt), "has_more": nxt is not None}


async def _due(request: Request, ctx: RequestContext, within_hours: int, include_overdue: bool,
               policy_id: str | None) -> dict[str, Any]:
    ctx.describe("rotation_due", resource_type="rotation_policy", resource_id=policy_id)
    async with app_state(request).db.raw() as conn:
        items = await svc.due_list(conn, ctx, within_hours=within_hours, include_overdue=include_overdue,
                                   policy_id=policy_id)
    allowed = set(await app_state(request).get("access").filter(ctx, [i["secret_path"] for i in items], "list"))
    data = [i for i in items if i["secret_path"] in allowed]
    return {"data": data, "cursor": None, "has_more": False}


@router.get("/due", summary="Secrets due for rotation soon (and overdue ones)")
async def rotation_due(ctx: DueList, request: Request, within_hours: Annotated[int, Query(ge=0, le=87600)] = 24,
                       include_overdue: bool = True, policy_id: str | None = None) -> dict[str, Any]:
    return await _due(request, ctx, within_hours, include_overdue, policy_id)


@router.get("/pending", summary="Deprecated alias of /v1/rotation/due", deprecated=True)
async def rotation_pending(ctx: DueList, request: Request, within_hours: Annotated[int, Query(ge=0, le=87600)] = 24,
                           include_overdue: bool = True, policy_id: str | None = None) -> dict[str, Any]:
    return await _due(request, ctx, within_hours, include_overdue, policy_id)


async def rotate_secret(request: Request, ctx: RequestContext, owner: Any, path: str) -> bytes:
    """``POST /v1/secrets/{path}:rotate``: the policy-level rotate restricted to this secret's path."""
    import orjson

    state = app_state(request)
    async with state.db.raw() as conn:
        row = await svc.policy_of_secret(conn, owner.scope, owner.owner_id, path)
    await state.get("access").check(ctx, path, "rotate", scope=owner.scope)
    if row is None or row["deleted_at"] is not None:
        raise AppError("secret_not_found", f"Secret '{path}' not found", {"path": path})
    if row["policy_id"] is None:
        raise AppError("conflict", f"Secret '{path}' has no rotation policy; attach one first (PUT with "
                       "options.rotation_policy_id or POST /v1/rotation/policies/{id}/secrets)",
                       {"path": path, "field": "rotation_policy_id"})
    [item] = await rotate_paths(request, ctx, row["policy_id"], [path])
    return orjson.dumps(item)
