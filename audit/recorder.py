"""The audit contract. The audit feature registers the real recorder as ``state.components["audit"]``.

Rules every caller follows:
- a read (no transaction): ``await audit.record(ctx, ...)`` before returning the response;
- a change: ``await audit.record(ctx, ..., conn=tx)`` inside the change's transaction, so both commit together;
- a failure after ``ctx.describe(...)`` is audited by the error hook with success=false and the error code.
Secret values never go in; sensitive request fields are HMAC'd by the recorder.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from api.context import RequestContext


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
