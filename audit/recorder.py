"""The audit contract. The audit feature registers the real recorder as ``state.components["audit"]``.

Rules every caller follows:
- a read (no transaction): ``await audit.record(ctx, ...)`` before returning the response;
- a change: ``await audit.record(ctx, ..., conn=tx)`` inside the change's transaction, so both commit together;
- a failure after ``ctx.describe(...)`` is audited by the error hook with success=false and the error code.
Secret values never go in; sensitive request fields are HMAC'd by the recorder.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import asyncpg

from api.context import RequestContext
from audit.entry import AuditEntry
from audit.hashing import sanitize_extra
from audit.sink import AuditUnavailable
from core.errors import AppError
from core.ids import new_id
from repositories import audit as audit_repo

log = logging.getLogger("scaivault.audit")


class AuditRecorder(Protocol):
    async def record(self, ctx: RequestContext, *, action: str | None = None, path: str | None = None,
                     permission: str | None = None, success: bool = True, error_code: str | None = None,
                     resource_type: str | None = None, resource_id: str | None = None,
                     version: int | None = None, extra: dict[str, Any] | None = None,
                     conn: asyncpg.Connection | None = None) -> None: ...


class NullAuditRecorder:
    """Placeholder until the audit feature is wired; records nothing."""

    async def record(self, ctx: RequestContext, **kwargs: Any) -> None:
        ctx.audited = True


class DbAuditRecorder:
    """The real recorder (registered as ``state.components["audit"]``).

    - ``conn`` given: one INSERT inside that transaction (the entry commits or rolls back with the change);
    - no ``conn`` and a group-commit sink: the entry joins the next batch and ``record`` returns once committed;
    - no ``conn`` and no sink (workers, CLI): one INSERT on a pooled connection.
    Any failure raises ``AppError("audit_unavailable")`` (503): the request fails closed, never unaudited.
    """

    def __init__(self, hmac_key: bytes, *, db: Any = None, sink: Any = None) -> None:
        self._key = hmac_key
        self._db = db
        self._sink = sink

    def build(self, ctx: RequestContext, *, action: str | None = None, path: str | None = None,
              permission: str | None = None, success: bool = True, error_code: str | None = None,
              resource_type: str | None = None, resource_id: str | None = None, version: int | None = None,
              extra: dict[str, Any] | None = None) -> AuditEntry:
        p = ctx.principal
        merged = {**ctx.extra, **(extra or {})} if ctx.extra else (extra or {})
        return AuditEntry(
            id=new_id("log"), tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, identity_id=p.identity_id,
            identity_type=p.identity_type, action=action or ctx.action or "request", success=success,
            request_id=ctx.request_id, correlation_id=ctx.correlation_id or ctx.request_id,
            resource_type=resource_type or ctx.resource_type, resource_id=resource_id or ctx.resource_id,
            secret_path=path if path is not None else ctx.resource_path,
            permission=permission or ctx.permission, version=version, error_code=error_code,
            source_ip=ctx.source_ip, user_agent=(ctx.user_agent or None) and ctx.user_agent[:512],
            duration_ms=round((time.perf_counter() - ctx.started_at) * 1000, 3),
            extra_data=sanitize_extra(self._key, merged),
        )

    async def record(self, ctx: RequestContext, *, action: str | None = None, path: str | None = None,
                     permission: str | None = None, success: bool = True, error_code: str | None = None,
                     resource_type: str | None = None, resource_id: str | None = None,
                     version: int | None = None, extra: dict[str, Any] | None = None,
                     conn: asyncpg.Connection | None = None) -> None:
        entry = self.build(ctx, action=action, path=path, permission=permission, success=success,
                           error_code=error_code, resource_type=resource_type, resource_id=resource_id,
                           version=version, extra=extra)
        await self.write(entry, conn=conn)
        ctx.audited = True
        ctx.audited_in_tx = conn is not None

    async def write(self, entry: AuditEntry, *, conn: asyncpg.Connection | None = None) -> None:
        row = entry.as_row()
        try:
            if conn is not None:
                await audit_repo.insert_one(conn, row)
            elif self._sink is not None:
                await self._sink.submit(row)
            elif self._db is not None:
                async with self._db.raw() as c:
                    await audit_repo.insert_one(c, row)
            else:
                raise AuditUnavailable("no audit store configured")
        except (AuditUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.error("audit write failed", extra={"action": entry.action, "error": type(exc).__name__})
            raise AppError("audit_unavailable", "the audit log could not be written; the request was not "
                           "performed", {"retry": True}) from None


def system_context(job: str, tenant_id: str, *, partner_id: str | None = None, workflow_id: str | None = None,
                   action: str | None = None, path: str | None = None) -> RequestContext:
    """A RequestContext for background work acting as ``system:<job>`` (correlation id = the workflow id).

    Activities: ``await recorder.record(system_context("rotation", tenant, workflow_id=wf_id), action="rotate",
    path=p, conn=tx)`` with ``recorder = DbAuditRecorder(key, db=db)`` (see ``recorder_for``).
    """
    from auth.principal import system_principal

    rid = workflow_id or new_id("req")
    ctx = RequestContext(principal=system_principal(job, tenant_id, partner_id), tenant_id=tenant_id,
                         partner_id=partner_id, request_id=rid, source_ip=None, user_agent=f"scaivault-{job}",
                         scope=None, category=None, correlation_id=workflow_id or rid)
    if action:
        ctx.describe(action, path=path)
    return ctx


def recorder_for(settings: Any, db: Any) -> DbAuditRecorder:
    """A recorder for workers and the CLI (direct INSERTs, no group-commit task)."""
    return DbAuditRecorder(settings.audit_hmac_key.get_secret_value().encode(), db=db)
