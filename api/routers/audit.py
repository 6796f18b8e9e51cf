"""/v1/audit: log queries, NDJSON export, per-secret and per-identity trails, summary, chain verification.

Each route declares its action with ``ctx.describe``; the audit hook then records the query itself (committed
before the response starts), so reading the audit log is audited too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from api.context import RequestContext
from api.deps import app_state, authorized
from api.params import Text, UtcDatetime
from audit.sealer import settings_chain_key, verify_tenant
from repositories.audit import LogFilter
from services import audit as svc
from services.secrets import input as inp

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Reader = Annotated[RequestContext, Depends(authorized("audit:read", "audit_queries"))]
Exporter = Annotated[RequestContext, Depends(authorized("audit:export", "audit_export"))]
Admin = Annotated[RequestContext, Depends(authorized("admin", "audit_queries"))]
EXPORT_MAX_LIMIT = 1_000_000_000
Limit = Annotated[int, Query(ge=1, le=svc.MAX_LIMIT, description="page size (default 100, max 1000)")]


def log_filter(
    from_: Annotated[UtcDatetime | None, Query(alias="from", description="ISO-8601, inclusive")] = None,
    to: Annotated[UtcDatetime | None, Query(description="ISO-8601, exclusive")] = None,
    since: Annotated[UtcDatetime | None, Query(description="alias of from")] = None,
    until: Annotated[UtcDatetime | None, Query(description="alias of to")] = None,
    action: Annotated[Text | None, Query(description="one action or a comma-separated list")] = None,
    identity_id: Text | None = None,
    identity_type: Annotated[Text | None, Query(description="user, service_account, group, system")] = None,
    path_prefix: Text | None = None,
    success: bool | None = None,
    source_ip: Text | None = None,
    request_id: Text | None = None,
) -> LogFilter:
    """Every value is checked by its type (api/params.py) before the handler runs, so nothing a client sends
    reaches SQL, the audit entry of the query, or the first byte of an export unvalidated."""
    return svc.make_filter(since=from_ or since, until=to or until, action=action, identity_id=identity_id,
                           identity_type=identity_type, path_prefix=path_prefix, success=success,
                           source_ip=source_ip, request_id=request_id)


Filter = Annotated[LogFilter, Depends(log_filter)]


@router.get("/logs", summary="Audit entries of the tenant, newest first")
async def logs(ctx: Reader, f: Filter, request: Request, limit: Limit = 100,
               cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("audit_query", resource_type="audit_log")
    return await svc.list_logs(app_state(request).db, ctx, f, cursor=cursor, limit=limit)


@router.get("/logs/export", summary="Stream matching entries as NDJSON (oldest first)",
            response_class=StreamingResponse)
async def export(ctx: Exporter, f: Filter, request: Request,
                 limit: Annotated[int | None, Query(ge=1, le=EXPORT_MAX_LIMIT, description=(
                     "at most this many entries, the oldest first (default: every matching entry)"))] = None,
                 ) -> StreamingResponse:
    ctx.describe("audit_export", resource_type="audit_log")
    lines = await svc.export_stream(app_state(request).db, ctx.tenant_id, f, limit)  # the query ran: errors are clean
    return StreamingResponse(lines, media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit.ndjson"'})


@router.get("/secrets/{path:path}", summary="Trail for one secret path with its 30-day summary")
async def secret_trail(path: str, ctx: Reader, f: Filter, request: Request, limit: Limit = 100,
                       cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("audit_query", resource_type="secret")
    ctx.resource_id = inp.check_path(path)  # described once valid; not secret_path: a query is no access
    return await svc.secret_trail(app_state(request).db, ctx, path, f, cursor=cursor, limit=limit)


@router.get("/identities/{identity_id}", summary="Trail for one identity with its 30-day summary")
async def identity_trail(identity_id: Text, ctx: Reader, f: Filter, request: Request, limit: Limit = 100,
                         cursor: str | None = None) -> dict[str, Any]:
    ctx.describe("audit_query", resource_type="identity", resource_id=identity_id)
    return await svc.identity_trail(app_state(request).db, ctx, identity_id, f, cursor=cursor, limit=limit)


@router.get("/summary", summary="Counts by outcome, action and identity type; top identities and paths")
async def summary(ctx: Reader, request: Request,
                  from_: Annotated[UtcDatetime | None, Query(alias="from")] = None,
                  to: UtcDatetime | None = None) -> dict[str, Any]:
    ctx.describe("audit_query", resource_type="audit_summary")
    return await svc.summary(app_state(request).db, ctx, from_, to)


@router.get("/verify", summary="Verify the tenant's hash chain; names the first broken link (admin)")
async def verify(ctx: Admin, request: Request) -> dict[str, Any]:
    ctx.describe("audit_verify", resource_type="audit_log")
    async with app_state(request).db.raw() as conn:
        result = await verify_tenant(conn, ctx.tenant_id, key=settings_chain_key(app_state(request).settings))
    return result.as_dict()
