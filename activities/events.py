"""Event activities: one webhook delivery attempt, and the long-running outbox relay loop."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from temporalio import activity

from audit.recorder import recorder_for, system_context
from core.settings import Settings
from db.engine import Database
from repositories.events import webhooks as webhooks_repo
from services.events.relay import EventRelay, ensure_delivery
from services.events.visibility import owner_context, visible
from services.events.webhook_secrets import SecretBox
from services.events.webhook_sender import WebhookSender
from workflows.types.events import AttemptInput, AttemptResult, RelayRunInput, RelayRunResult

log = logging.getLogger("scaivault.events")
WITHHELD = "withheld: the subscription owner may no longer read or list this event's path"


class EventActivities:
    def __init__(self, settings: Settings, db: object, temporal: object, redis: object = None) -> None:
        assert isinstance(db, Database)
        self.settings = settings
        self.db = db
        self.box = SecretBox(settings)
        self.sender = WebhookSender(settings)
        self.relay = EventRelay(settings, db, temporal, redis)
        self.audit = recorder_for(settings, db)

    @activity.defn(name="events.attempt_delivery")
    async def attempt_delivery(self, inp: AttemptInput) -> AttemptResult:
        """Send one signed attempt and record it. Idempotent: a delivery already marked success is not resent."""
        async with self.db.raw() as conn:
            ctx = await webhooks_repo.attempt_context(conn, inp.tenant_id, inp.webhook_id, inp.event_id)
            if ctx is None:
                if not await ensure_delivery(conn, inp.tenant_id, inp.webhook_id, inp.event_id):
                    return AttemptResult("gone", error="webhook or event no longer exists")
                ctx = await webhooks_repo.attempt_context(conn, inp.tenant_id, inp.webhook_id, inp.event_id)
                assert ctx is not None
            if ctx["status"] == "success":
                return AttemptResult("success")
            if not ctx["enabled"]:
                await webhooks_repo.close_delivery(conn, ctx["id"], error="webhook disabled")
                return AttemptResult("gone", error="webhook disabled")
            if ctx["kind"] == "subscription" and not await self._owner_may_see(conn, inp.tenant_id, ctx):
                await self._withhold(conn, inp, ctx)
                return AttemptResult("gone", error=WITHHELD)
            secret = self.box.open(inp.tenant_id, inp.webhook_id, ctx["secret_enc"])
        res = await self.sender.send(ctx["url"], secret, bytes(ctx["body"]), event_id=inp.event_id,
                                     event_type=ctx["event_type"])
        if res.ok:
            status, outcome, next_at = "success", "success", None
        elif inp.next_delay_ms is None:
            status, outcome, next_at = "failed", "dead", None
        else:
            status, outcome = "pending", "retry"
            next_at = datetime.now(UTC) + timedelta(milliseconds=inp.next_delay_ms)
        async with self.db.raw() as conn, conn.transaction():
            await webhooks_repo.record_attempt(conn, ctx["id"], status=status, response_code=res.response_code,
                                               response_body=res.response_body, duration_ms=res.duration_ms,
                                               error=res.error, next_attempt_at=next_at)
            await webhooks_repo.record_health(conn, inp.webhook_id, success=res.ok, dead=outcome == "dead",
                                              degraded_after=self.settings.webhook_degraded_after,
                                              failing_after=self.settings.webhook_failing_after)
            # background action: audited as system:webhook-dispatcher, correlated to the delivery workflow
            await self.audit.record(
                system_context("webhook-dispatcher", inp.tenant_id, workflow_id=activity.info().workflow_id),
                action="webhook_delivery", resource_type="webhook", resource_id=inp.webhook_id, success=res.ok,
                error_code=None if res.ok else "delivery_failed",
                extra={"event_id": inp.event_id, "event_type": ctx["event_type"], "attempt": inp.attempt,
                       "outcome": outcome, "response_code": res.response_code}, conn=conn)
        if not res.ok:
            log.info("webhook attempt failed", extra={"webhook_id": inp.webhook_id, "event_id": inp.event_id,
                                                      "attempt": inp.attempt, "outcome": outcome, "error": res.error})
        return AttemptResult(outcome, res.response_code, res.error)

    async def _owner_may_see(self, conn: asyncpg.Connection, tenant_id: str, ctx: asyncpg.Record) -> bool:
        """Re-check the subscription owner's live permission on the event (it may have changed since fan-out)."""
        env = orjson.loads(bytes(ctx["body"]))
        owner = ctx["owner_id"]
        octx = await owner_context(conn, tenant_id, env.get("partner_id"), owner) if owner else None
        return octx is not None and (await visible(self.relay.access, octx, [env]))[0]

    async def _withhold(self, conn: asyncpg.Connection, inp: AttemptInput, ctx: asyncpg.Record) -> None:
        """Close the delivery without sending, audited as a failed delivery (outcome ``withheld``)."""
        async with conn.transaction():
            await webhooks_repo.close_delivery(conn, ctx["id"], error=WITHHELD)
            await self.audit.record(
                system_context("webhook-dispatcher", inp.tenant_id, workflow_id=activity.info().workflow_id),
                action="webhook_delivery", resource_type="webhook", resource_id=inp.webhook_id, success=False,
                error_code="access_denied", conn=conn,
                extra={"event_id": inp.event_id, "event_type": ctx["event_type"], "attempt": inp.attempt,
                       "outcome": "withheld"})
        log.info("subscription delivery withheld", extra={"webhook_id": inp.webhook_id, "event_id": inp.event_id})

    @activity.defn(name="events.run_relay")
    async def run_relay(self, inp: RelayRunInput) -> RelayRunResult:
        """Dispatch the outbox for ``run_seconds`` (LISTEN/NOTIFY + periodic sweep), heartbeating."""
        last = [0.0]

        def beat(n: int) -> None:  # at most once a second: each heartbeat is encoded (and encrypted) in full
            now = time.monotonic()
            if now - last[0] >= 1.0:
                last[0] = now
                activity.heartbeat(n)

        total = await self.relay.run(inp.run_seconds, beat)
        return RelayRunResult(dispatched=total)
