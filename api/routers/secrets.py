"""/v1/secrets and /v1/partner/secrets (spec core.md §10.2, §10.3, §4.3; docs/secrets.md).

Sub-resources use ``:suffix`` forms because ``:`` can never occur in a path (§6.2)::

    GET    {base}/{path}[?version=N]      value                       secrets:read   / read
    GET    {base}/{path}:metadata         metadata, no value          secrets:list   / list
    GET    {base}/{path}:versions         version history             secrets:list   / list
    PUT    {base}/{path}                  new version (201 | 200)     secrets:write  / write
    PATCH  {base}/{path}[:metadata]       metadata/options update     secrets:write  / write
    DELETE {base}/{path}[?permanent=true] soft (or hard) delete, 204  secrets:delete / delete
    POST   {base}/{path}:restore          undo a soft delete          secrets:write  / write
    POST   {base}/{path}:rotate           rotate now (its policy)     secrets:rotate / rotate
    POST   {base}/{path}:destroy          erase versions {"versions"} secrets:delete / delete
    GET    {base}?prefix=&tag=&...        list                        secrets:list   / list
    POST   {base}/batch                   batch read                  secrets:read   / read (each)
    POST   {base}/batch/metadata          batch metadata              secrets:list   / list (each)

with ``{base}`` = ``/v1/secrets`` (tenant secrets; also ``/v1/t/{tenant_id}/secrets`` via the middleware)
or ``/v1/partner/secrets`` (partner-wide secrets; writes need a partner admin of that partner).

These are plain Starlette routes (no FastAPI dependency solving or response models): the value read is the
hot path, and each handler picks its scope and rate-limit category from the ``:suffix`` before
authorising, which a static ``Depends`` cannot express.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.context import RequestContext
from api.deps import authorized
from api.middleware import FastRoute
from auth.tenancy import UNASSIGNED_PARTNER, is_placeholder_partner
from core.errors import AppError
from repositories.secrets import Owner
from services.secrets import input as inp

router = APIRouter(tags=["secrets"])

Auth = Callable[[Request], Awaitable[RequestContext]]
_READ: Auth = authorized("secrets:read", "read_secrets")
_LIST: Auth = authorized("secrets:list", "list_operations")
_WRITE: Auth = authorized("secrets:write", "write_secrets")
_DELETE: Auth = authorized("secrets:delete", "delete_secrets")
_ROTATE: Auth = authorized("secrets:rotate", "write_secrets")
_BATCH_READ: Auth = authorized("secrets:read", "batch_read")
_BATCH_META: Auth = authorized("secrets:list", "batch_metadata")
_JSON = "application/json"
_TRUE = {"1", "true", "yes"}


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _service(request: Request) -> Any:
    return request.app.state.sv.components["secrets"]


def _owner(ctx: RequestContext, partner: bool) -> Owner:
    if not partner:
        return Owner("tenant", ctx.tenant_id, ctx.partner_id or UNASSIGNED_PARTNER)
    if not ctx.partner_id or is_placeholder_partner(ctx.partner_id):
        # A placeholder partner is no partner: never a namespace two tenants could share (issue 11 item 9).
        raise AppError("forbidden", "this tenant has no partner, so there are no partner secrets")
    return Owner("partner", ctx.partner_id, ctx.partner_id)


def _require_partner_admin(ctx: RequestContext) -> None:
    p = ctx.principal
    if not (p.is_super_admin or (p.is_partner_admin and p.partner_id == ctx.partner_id)):
        raise AppError("forbidden", "only partner admins of this partner may change partner secrets",
                       {"partner_id": ctx.partner_id})


def _split(request: Request) -> tuple[str, str | None]:
    raw: str = request.path_params["path"]
    path, sep, op = raw.partition(":")
    return path, (op if sep else None)


def _bad_op(request: Request, op: str, allowed: dict[str, list[str]]) -> AppError:
    methods = [m for m, ops in allowed.items() if op in ops]
    if methods:
        return AppError("method_not_allowed", f"{request.method} is not allowed on ':{op}'",
                        {"allowed": methods}, headers={"Allow": ", ".join(methods)})
    return AppError("not_found", f"unknown secret operation ':{op}'", {"operation": op})


def _described(ctx: RequestContext, action: str, path: str) -> RequestContext:
    """Declare the action for the audit trail, then the path once it is valid: a path that breaks §6.2 (NUL,
    CR/LF, anything outside the alphabet) is ``400 invalid_path`` before anything about it is described."""
    ctx.describe(action, permission=action)
    ctx.resource_path = inp.check_path(path)
    return ctx


_OPS = {"GET": ["metadata", "versions"], "PATCH": ["metadata"], "POST": ["restore", "destroy", "rotate"]}


# ------------------------------------------------------------------------------------------ handlers


def _get(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def get(request: Request) -> Response:
        path, op = _split(request)
        if op is None:  # the hot path: value read
            ctx = _described(await _READ(request), "read", path)
            version = inp.parse_version(request.query_params.get("version")) if request.scope["query_string"] else None
            return _json(await _service(request).read(ctx, _owner(ctx, partner), path, version))
        if op not in ("metadata", "versions"):
            raise _bad_op(request, op, _OPS)
        ctx = _described(await _LIST(request), "list", path)
        svc = _service(request)
        if op == "metadata":
            include_deleted = request.query_params.get("include_deleted", "").lower() in _TRUE
            return _json(await svc.metadata(ctx, _owner(ctx, partner), path, include_deleted))
        return _json(await svc.versions(ctx, _owner(ctx, partner), path))

    return get


async def _change(request: Request, partner: bool, authorize: Callable[[Request], Awaitable[RequestContext]],
                  action: str, path: str) -> RequestContext:
    """The prologue every change shares: authorize, describe for the audit trail, partner-admin rule."""
    ctx = _described(await authorize(request), action, path)
    if partner:
        _require_partner_admin(ctx)
    return ctx


def _put(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def put(request: Request) -> Response:
        path, op = _split(request)
        if op is not None:
            raise _bad_op(request, op, _OPS)
        ctx = await _change(request, partner, _WRITE, "write", path)
        doc = inp.parse_json_object(await request.body())
        created, body = await _service(request).write(ctx, _owner(ctx, partner), path, doc)
        return _json(body, 201 if created else 200)

    return put


def _patch(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def patch(request: Request) -> Response:
        path, op = _split(request)
        if op not in (None, "metadata"):
            raise _bad_op(request, op, _OPS)
        ctx = await _change(request, partner, _WRITE, "write", path)
        doc = inp.parse_json_object(await request.body())
        return _json(await _service(request).update_metadata(ctx, _owner(ctx, partner), path, doc))

    return patch


def _delete(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def delete(request: Request) -> Response:
        path, op = _split(request)
        if op is not None:
            raise _bad_op(request, op, _OPS)
        ctx = await _change(request, partner, _DELETE, "delete", path)
        permanent = request.query_params.get("permanent", "").lower() in _TRUE
        await _service(request).delete(ctx, _owner(ctx, partner), path, permanent)
        return Response(status_code=204)

    return delete


def _post(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def post(request: Request) -> Response:
        path, op = _split(request)
        if op not in ("restore", "destroy", "rotate"):
            raise _bad_op(request, op or "", _OPS) if op else AppError(
                "method_not_allowed", "POST needs an operation suffix such as ':restore'",
                {"allowed": ["GET", "PUT", "PATCH", "DELETE"]})
        svc = _service(request)
        if op == "rotate":  # docs/rotation.md: rotate now through the secret's rotation policy
            from api.routers.rotation_policies import rotate_secret

            ctx = await _change(request, partner, _ROTATE, "rotate", path)
            return _json(await rotate_secret(request, ctx, _owner(ctx, partner), path))
        if op == "restore":
            ctx = await _change(request, partner, _WRITE, "write", path)
            return _json(await svc.restore(ctx, _owner(ctx, partner), path))
        ctx = await _change(request, partner, _DELETE, "delete", path)
        doc = inp.parse_json_object(await request.body())
        return _json(await svc.destroy(ctx, _owner(ctx, partner), path, doc))

    return post


def _list(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def list_secrets(request: Request) -> Response:
        ctx = await _LIST(request)
        q = request.query_params
        prefix = q.get("prefix", "")
        ctx.describe("list", permission="list")
        ctx.resource_path = inp.check_prefix(prefix) or None  # described once valid
        limit = inp.query_int(q.get("limit"), "limit", 1, 1000) or 100
        body = await _service(request).list_secrets(
            ctx, _owner(ctx, partner), prefix=prefix, limit=limit, cursor=q.get("cursor"),
            tags=q.getlist("tag"), expiring_within=q.get("expiring_within"),
            include_deleted=q.get("include_deleted", "").lower() in _TRUE)
        return _json(body)

    return list_secrets


def _batch(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def batch(request: Request) -> Response:
        ctx = await _BATCH_READ(request)
        ctx.describe("read", permission="read")
        doc = inp.parse_json_object(await request.body())
        return _json(await _service(request).batch_read(ctx, _owner(ctx, partner), doc))

    return batch


def _batch_metadata(partner: bool) -> Callable[[Request], Awaitable[Response]]:
    async def batch_metadata(request: Request) -> Response:
        ctx = await _BATCH_META(request)
        ctx.describe("list", permission="list")
        doc = inp.parse_json_object(await request.body())
        return _json(await _service(request).batch_metadata(ctx, _owner(ctx, partner), doc))

    return batch_metadata


def _mount(base: str, partner: bool) -> None:
    # Order matters: GET item first (the hot path; "batch" is a legal secret name for GET), then the
    # literal POST batch routes before the catch-all POST {path:path} route.
    item = f"{base}/{{path:path}}"
    router.add_route(item, _get(partner), methods=["GET"], include_in_schema=False)
    router.add_route(f"{base}/batch", _batch(partner), methods=["POST"], include_in_schema=False)
    router.add_route(f"{base}/batch/metadata", _batch_metadata(partner), methods=["POST"], include_in_schema=False)
    router.add_route(base, _list(partner), methods=["GET"], include_in_schema=False)
    router.add_route(item, _put(partner), methods=["PUT"], include_in_schema=False)
    router.add_route(item, _patch(partner), methods=["PATCH"], include_in_schema=False)
    router.add_route(item, _delete(partner), methods=["DELETE"], include_in_schema=False)
    router.add_route(item, _post(partner), methods=["POST"], include_in_schema=False)


_mount("/v1/secrets", partner=False)
_mount("/v1/partner/secrets", partner=True)

# GETs are served straight from the middleware (same handlers; the routes above stay for completeness).
FAST_ROUTES = [
    FastRoute("GET", "/v1/secrets/", "/v1/secrets/{path:path}", _get(False)),
    FastRoute("GET", "/v1/partner/secrets/", "/v1/partner/secrets/{path:path}", _get(True)),
]
