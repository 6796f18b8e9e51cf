"""``policy.violation`` events for denied requests: best effort, deduplicated and capped per process.

A denial is emitted in its own small transaction (the request's own work is being refused, so there is no change
to join). The request never fails because of it: errors and a slow database (over ``timeout`` seconds) are logged
and dropped.

Sampling (decision): a caller hammering a denied path must not flood the outbox and every webhook. Per process:

- the same (tenant, identity, path, permission, code) is emitted at most once per ``dedupe_seconds`` (60 s);
- at most ``tenant_cap`` (60) violation events per tenant per minute;
- what was left out is counted and carried in the next emitted event of that tenant as ``data.suppressed``.

The audit log (one ``success: false`` entry per denied request, written by the audit feature's error hook) stays the
complete record; the event is a notification.

Who receives it: the event's ``path`` is the denied path and ``data.scope`` its scope, so subscriptions get it only
when their owner may ``read`` or ``list`` that path (services/events/visibility.py), like any other path event: a
denial must not tell an identity about paths it could not see itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from api.context import RequestContext
from db.engine import Database
from policy import Decision
from repositories.events import outbox

log = logging.getLogger("scaivault.policy")
_MAX_KEYS = 10_000


class ViolationReporter:
    def __init__(self, db: Database, *, dedupe_seconds: float = 60.0, tenant_cap: int = 60,
                 timeout: float = 2.0) -> None:
        self.db = db
        self.dedupe = dedupe_seconds
        self.cap = tenant_cap
        self.timeout = timeout
        self._seen: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._window: dict[str, tuple[float, int]] = {}  # tenant -> (window start, emitted in it)
        self._suppressed: dict[str, int] = {}

    def _admit(self, tenant_id: str, key: tuple[str, ...]) -> bool:
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < self.dedupe:
            return False
        start, count = self._window.get(tenant_id, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if count >= self.cap:
            self._window[tenant_id] = (start, count)
            return False
        self._window[tenant_id] = (start, count + 1)
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > _MAX_KEYS:
            self._seen.popitem(last=False)
        return True

    async def report(self, ctx: RequestContext, decision: Decision, scope: str = "tenant") -> bool:
        """Emit one event for a denial unless sampled out. Returns whether an event was written."""
        ident = ctx.principal.identity_id
        key = (ctx.tenant_id, ident, decision.path, decision.permission, decision.code or "")
        if not self._admit(ctx.tenant_id, key):
            self._suppressed[ctx.tenant_id] = self._suppressed.get(ctx.tenant_id, 0) + 1
            return False
        data: dict[str, Any] = {
            "identity_id": ident, "path": decision.path, "permission": decision.permission,
            "reason": decision.reason, "code": decision.code, "scope": scope, "source_ip": ctx.source_ip,
        }
        if decision.failed_condition is not None:
            data["failed_condition"] = decision.failed_condition
        suppressed = self._suppressed.pop(ctx.tenant_id, 0)
        if suppressed:
            data["suppressed"] = suppressed
        try:
            await asyncio.wait_for(self._emit(ctx, decision.path, data), self.timeout)
            return True
        except Exception:
            self._suppressed[ctx.tenant_id] = self._suppressed.get(ctx.tenant_id, 0) + suppressed + 1
            log.warning("could not record policy.violation event", exc_info=True)
            return False

    async def _emit(self, ctx: RequestContext, path: str, data: dict[str, Any]) -> None:
        async with self.db.raw() as conn, conn.transaction():
            await outbox.emit(conn, event_type="policy.violation", tenant_id=ctx.tenant_id,
                              partner_id=ctx.partner_id, identity_id=ctx.principal.identity_id, data=data,
                              path=path, request_id=ctx.request_id)
