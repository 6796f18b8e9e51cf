"""/v1/federation/backends (scopes federation:read / federation:write, rate category federation_operations):
CRUD, status, forced sync, conflicts and their resolution. Spec lifecycle.md §6; decisions in docs/federation.md."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.context import RequestContext
from api.deps import app_state, authorized
from services.federation import backends, conflicts

router = APIRouter(prefix="/v1/federation/backends", tags=["federation"])
Reader = Annotated[RequestContext, Depends(authorized("federation:read", "federation_operations"))]
Writer = Annotated[RequestContext, Depends(authorized("federation:write", "federation_operations"))]
Verify = Annotated[bool, Query(description="connect with the credentials before saving (invalid_config if not)")]
BackendId = Annotated[str, Field(max_length=64)]


class BackendCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any]
    path_mapping: dict[str, str]
    mode: Literal["proxy", "sync"]
    sync_interval: str | None = Field(default=None, max_length=32)


class BackendUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=128)
    config: dict[str, Any] | None = None
    path_mapping: dict[str, str] | None = None
    mode: Literal["proxy", "sync"] | None = None
    sync_interval: str | None = Field(default=None, max_length=32)


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: Literal["local", "remote"]


def _id(value: str, code: str = "backend_not_found") -> str:
    """Ids are ``<prefix>_<ulid>``: anything else is a missing resource (never echoed into audit or logs)."""
    from core.errors import AppError

    if len(value) > 64 or not value.replace("_", "").isalnum():
        raise AppError(code, "not found", {})
    return value


@router.post("", status_code=201, summary="Create a federated backend (hashicorp-vault or aws-secrets-manager)")
async def create_backend(body: BackendCreate, ctx: Writer, request: Request, verify: Verify = True) -> dict[str, Any]:
    ctx.describe("federation_backend_create", resource_type="federation_backend")
    return await backends.create(app_state(request), ctx, body.model_dump(), verify_remote=verify)


@router.get("", summary="List federated backends")
async def list_backends(ctx: Reader, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        cursor: Annotated[str | None, Query(max_length=256)] = None) -> dict[str, Any]:
    ctx.describe("federation_backend_list", resource_type="federation_backend")
    return await backends.list_backends(app_state(request), ctx, cursor=cursor, limit=limit)


@router.get("/{backend_id}", summary="One federated backend")
async def get_backend(backend_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("federation_backend_read", resource_type="federation_backend", resource_id=_id(backend_id))
    return backends.public(await backends.get_row(app_state(request), ctx, backend_id))


@router.patch("/{backend_id}", summary="Change a backend (config, path_mapping, mode, sync_interval, name)")
async def update_backend(backend_id: str, body: BackendUpdate, ctx: Writer, request: Request,
                         verify: Verify = True) -> dict[str, Any]:
    ctx.describe("federation_backend_update", resource_type="federation_backend", resource_id=_id(backend_id))
    return await backends.update(app_state(request), ctx, backend_id, body.model_dump(exclude_unset=True),
                                 verify_remote=verify)


@router.delete("/{backend_id}", status_code=204, summary="Delete a backend (synced local copies stay)")
async def delete_backend(backend_id: str, ctx: Writer, request: Request) -> Response:
    ctx.describe("federation_backend_delete", resource_type="federation_backend", resource_id=_id(backend_id))
    await backends.delete(app_state(request), ctx, backend_id)
    return Response(status_code=204)


@router.get("/{backend_id}/status", summary="Health, last sync, its duration, counts, last error, lag, connection")
async def backend_status(backend_id: str, ctx: Reader, request: Request) -> dict[str, Any]:
    ctx.describe("federation_backend_status", resource_type="federation_backend", resource_id=_id(backend_id))
    return await backends.status(app_state(request), ctx, backend_id)


@router.post("/{backend_id}/sync", status_code=202, summary="Force a sync now (sync mode; coalesces)")
async def force_sync(backend_id: str, ctx: Writer, request: Request) -> dict[str, Any]:
    ctx.describe("federation_sync", resource_type="federation_backend", resource_id=_id(backend_id))
    return await backends.force_sync(app_state(request), ctx, backend_id)


@router.get("/{backend_id}/conflicts", summary="Conflicts: paths changed both locally and remotely")
async def list_conflicts(backend_id: str, ctx: Reader, request: Request,
                         include_resolved: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         cursor: Annotated[str | None, Query(max_length=256)] = None) -> dict[str, Any]:
    ctx.describe("federation_conflict_list", resource_type="federation_backend", resource_id=_id(backend_id))
    return await conflicts.list_conflicts(app_state(request), ctx, backend_id, include_resolved=include_resolved,
                                          cursor=cursor, limit=limit)


@router.post("/{backend_id}/conflicts/{conflict_id}/resolve", summary="Resolve a conflict: keep local or remote")
async def resolve_conflict(backend_id: str, conflict_id: str, body: Resolve, ctx: Writer,
                           request: Request) -> dict[str, Any]:
    _id(backend_id)
    ctx.describe("federation_conflict_resolve", resource_type="federation_conflict",
                 resource_id=_id(conflict_id, "conflict_not_found"))
    return await conflicts.resolve(app_state(request), ctx, backend_id, conflict_id, body.keep)
