"""Identity-sync activities: one tenant's sync (heartbeating while it paginates), failure bookkeeping, the
full-sync sweep that fans out to every tenant's entity workflow, and the requeue of stranded sync requests.

Idempotent: a sync is a reconcile (re-running it converges), run rows are upserts, and the sweep's
signal-with-start carries the sweep's ``sync_id`` (the entity ignores ids it has already seen).
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from audit.recorder import recorder_for, system_context
from clients.scaikey import (
    ScaiKeyClient,
    ScaiKeyError,
    ScaiKeyPaginationError,
    ScaiKeyStatusError,
    ScaiKeyTransportError,
)
from core.settings import Settings
from db.engine import Database
from repositories.identity import directory as directory_repo
from repositories.identity import sync_runs as runs_repo
from services.identity import sync as identity_sync
from workflows.types.identity import (
    RecordFailureInput,
    RequeueInput,
    RunSyncInput,
    RunSyncResult,
    SweepInput,
    SweepResult,
)

log = logging.getLogger("scaivault.identity")
INVALIDATE_CHANNEL = "scaivault:identity-invalidate"


def _heartbeat(detail: str) -> None:
    activity.heartbeat(detail)


def as_application_error(exc: ScaiKeyError) -> ApplicationError:
    """Outages and inconsistent listings retry; a 4xx (bad credentials, missing scope) does not."""
    if isinstance(exc, ScaiKeyTransportError | ScaiKeyPaginationError):
        return ApplicationError(str(exc), type="service_unavailable")
    if isinstance(exc, ScaiKeyStatusError):
        return ApplicationError(str(exc), type="scaikey_rejected", non_retryable=True)
    return ApplicationError(str(exc), type="service_unavailable")


class ScaiKeyClients:
    """ScaiKey clients built once per process: ScaiVault's own credentials, and the sync credentials
    (SCAIKEY_SYNC_CLIENT_ID/SECRET, one client per tenant slug) when configured."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.main = ScaiKeyClient(settings, timeout=30.0)
        self._sync: dict[str, ScaiKeyClient] = {}

    def for_sync(self, slug: str | None) -> ScaiKeyClient:
        s = self.settings
        if not s.scaikey_sync_client_id:
            return self.main
        key = s.scaikey_sync_tenant_slug or slug or ""
        client = self._sync.get(key)
        if client is None:
            client = ScaiKeyClient(s, timeout=30.0, client_id=s.scaikey_sync_client_id,
                                   client_secret=s.scaikey_sync_client_secret, tenant_slug=key or None)
            self._sync[key] = client
        return client

    async def aclose(self) -> None:
        await self.main.aclose()
        for c in self._sync.values():
            await c.aclose()


class IdentitySyncActivities:
    def __init__(self, settings: Settings, db: Database, redis: Any = None, temporal: Any = None,
                 clients: ScaiKeyClients | None = None) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.temporal = temporal
        self.clients = clients or ScaiKeyClients(settings)
        self.audit = recorder_for(settings, db)

    async def _audit(self, conn: Any, tenant_id: str, status: str, stats: dict[str, Any], error: str | None) -> None:
        """Background action: audited as system:identity-sync, correlated to the sync workflow."""
        keep = ("users_method", "users_seen", "groups_seen", "memberships_seen", "users_added",
                "users_soft_deleted", "super_admin_count", "duration_seconds", "skipped_reason")
        await self.audit.record(
            system_context("identity-sync", tenant_id, workflow_id=activity.info().workflow_id),
            action="identity_sync", resource_type="tenant", resource_id=tenant_id, success=status != "failed",
            error_code="sync_failed" if status == "failed" else None,
            extra={"status": status, **{k: stats[k] for k in keep if k in stats},
                   **({"error": error[:500]} if error else {})}, conn=conn)

    async def _client_for(self, tenant_id: str) -> ScaiKeyClient:
        async with self.db.raw() as conn:
            slug = await directory_repo.tenant_slug(conn, tenant_id)
        return self.clients.for_sync(slug)

    @activity.defn(name="identity.run_sync")
    async def run_sync(self, inp: RunSyncInput) -> RunSyncResult:
        async with self.db.raw() as conn:
            await runs_repo.mark_running(conn, inp.tenant_id, inp.sync_ids, trigger=inp.trigger, reason=inp.reason or None)
        client = await self._client_for(inp.tenant_id)
        try:
            if client.has_credentials:
                await identity_sync.refresh_tenant_row(self.db, client, inp.tenant_id)
            stats = await identity_sync.sync_tenant(self.db, self.settings, client, inp.tenant_id, _heartbeat)
        except ScaiKeyError as exc:
            client.drop_service_token()  # a rotated secret or changed scopes take effect on the retry
            log.warning("identity sync attempt failed", extra={"tenant_id": inp.tenant_id, "error": str(exc),
                                                                "attempt": activity.info().attempt})
            raise as_application_error(exc) from None
        status = "skipped" if stats.get("skipped_reason") else "succeeded"
        async with self.db.raw() as conn, conn.transaction():
            await runs_repo.finish_runs(conn, inp.tenant_id, inp.sync_ids, status=status, stats=stats, error=None)
            await self._audit(conn, inp.tenant_id, status, stats, None)
        await self._invalidate(inp.tenant_id)
        log.info("identity sync finished", extra={"tenant_id": inp.tenant_id, "status": status,
                                                  "users_seen": stats["users_seen"],
                                                  "users_method": stats["users_method"]})
        return RunSyncResult(status=status, stats=stats)

    @activity.defn(name="identity.record_failure")
    async def record_failure(self, inp: RecordFailureInput) -> None:
        stats = identity_sync.empty_stats()
        async with self.db.raw() as conn, conn.transaction():
            await runs_repo.finish_runs(conn, inp.tenant_id, inp.sync_ids, status="failed", stats=stats,
                                   error=inp.error[:2000])
            await self._audit(conn, inp.tenant_id, "failed", stats, inp.error)

    @activity.defn(name="identity.sweep")
    async def sweep(self, inp: SweepInput) -> SweepResult:
        """Full sync: mirror partners/tenants, then signal-with-start every tenant's entity workflow."""
        from services.identity.cache import start_tenant_sync

        async with self.db.raw() as conn:
            if inp.trigger == "schedule":  # a scheduled sweep has no run row yet (the API inserts the others')
                await runs_repo.insert_run(conn, sync_id=inp.sync_id, tenant_id=runs_repo.SWEEP_TENANT, partner_id=None,
                                      trigger="schedule", reason=inp.reason or None, requested_by=None)
            await runs_repo.mark_running(conn, runs_repo.SWEEP_TENANT, [inp.sync_id], trigger=inp.trigger,
                                    reason=inp.reason or None)
        try:
            tenant_ids = await identity_sync.sweep_directory(
                self.db, self.clients.main, self.clients.for_sync(None), partner_id=inp.partner_id)
        except ScaiKeyError as exc:
            if activity.info().attempt >= 5 or isinstance(exc, ScaiKeyStatusError):
                async with self.db.raw() as conn:
                    await runs_repo.finish_runs(conn, runs_repo.SWEEP_TENANT, [inp.sync_id], status="failed",
                                           stats={"tenants": []}, error=str(exc))
            raise as_application_error(exc) from None
        for tid in tenant_ids:
            activity.heartbeat(tid)
            async with self.db.raw() as conn:
                partner = await directory_repo.tenant_partner(conn, tid)
                await runs_repo.insert_run(conn, sync_id=inp.sync_id, tenant_id=tid, partner_id=partner,
                                      trigger=inp.trigger, reason=inp.reason or None, requested_by=None)
            await start_tenant_sync(self.temporal, self.settings, tid, inp.sync_id, reason=inp.reason,
                                    trigger=inp.trigger)
        async with self.db.raw() as conn:
            await runs_repo.finish_runs(conn, runs_repo.SWEEP_TENANT, [inp.sync_id], status="succeeded",
                                   stats={"tenants": tenant_ids}, error=None)
        return SweepResult(tenant_ids=tenant_ids)

    @activity.defn(name="identity.requeue_pending")
    async def requeue_pending(self, inp: RequeueInput) -> int:
        """Dispatch sync requests whose run row was committed but whose workflow start or signal failed (Temporal
        was unavailable: the API answered 503). Idempotent: a tenant entity ignores a ``sync_id`` it has seen, and
        a sweep already running keeps running."""
        from services.identity.cache import start_sweep, start_tenant_sync

        async with self.db.raw() as conn:
            rows = await runs_repo.stranded_runs(conn, older_than_seconds=inp.older_than_seconds, limit=inp.limit)
        for row in rows:
            activity.heartbeat(row["sync_id"])
            if row["tenant_id"] == runs_repo.SWEEP_TENANT:
                await start_sweep(self.temporal, self.settings, row["sync_id"], partner_id=row["partner_id"],
                                  reason=row["reason"] or "")
            else:
                await start_tenant_sync(self.temporal, self.settings, row["tenant_id"], row["sync_id"],
                                        reason=row["reason"] or "", trigger=row["trigger"] or "manual")
        if rows:
            log.info("re-dispatched stranded sync requests", extra={"count": len(rows)})
        return len(rows)

    async def _invalidate(self, tenant_id: str) -> None:
        """Tell every API process to drop cached principal enrichment for this tenant."""
        if self.redis is None:
            return
        try:
            await self.redis.publish(INVALIDATE_CHANNEL, tenant_id)
        except Exception:
            log.debug("identity invalidation broadcast failed; API caches expire by TTL", exc_info=True)
