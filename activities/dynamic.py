"""Lease activities (task queue ``leases``): one revoker pass over an engine's due leases, pause/resume, retry.

Idempotent: a pass reads what is due from PostgreSQL and each lease's revocation is idempotent at the target
(a role or user already gone counts as revoked); a lease becomes ``revoked`` only after the target confirmed.
Inputs and outputs carry ids only.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity

from core.settings import Settings
from db.engine import Database
from repositories import dynamic as repo
from services.dynamic import revocation
from services.dynamic.engines import Targets
from workflows.types.dynamic import (
    FailingLease,
    ReconcileInput,
    RetryInput,
    RevokeDueInput,
    RevokeDueResult,
    SetPausedInput,
)

log = logging.getLogger("scaivault.dynamic")


def _wf_id() -> str | None:
    try:
        return activity.info().workflow_id
    except RuntimeError:
        return None


def _beat(details: Any) -> None:
    try:
        activity.heartbeat(details)
    except RuntimeError:
        pass


class LeaseActivities:
    def __init__(self, settings: Settings, db: Database, redis: Any = None, temporal: Any = None) -> None:
        from services.rotation.rotate import worker_state

        self.settings = settings
        self.db = db
        self.state = worker_state(settings, db, redis)  # SecretsService (root credentials), audit recorder
        self.state.temporal = temporal
        # the revoker's connections to targets: at most DYNAMIC_REVOCATION_CONCURRENCY per engine per worker
        self.targets = Targets(settings, int(settings.dynamic_revocation_concurrency), "scaivault-revoker")
        self.state.components["dynamic_targets"] = self.targets

    @activity.defn(name="leases.revoke_due")
    async def revoke_due(self, inp: RevokeDueInput) -> RevokeDueResult:
        out = await revocation.revoke_due(self.state, self.targets, inp.tenant_id, inp.engine_id, heartbeat=_beat,
                                          workflow_id_=_wf_id(),
                                          run_seconds=float(self.settings.dynamic_revoker_run_seconds))
        if out.get("engine_exists") is False:
            await self.targets.forget(inp.engine_id)
            return RevokeDueResult(engine_exists=False)
        return RevokeDueResult(
            paused=bool(out.get("paused")), revoked=int(out.get("revoked", 0)), failed=int(out.get("failed", 0)),
            more_due=bool(out.get("more_due")), next_due_in_seconds=out.get("next_due_in_seconds"),
            failing=[FailingLease(**f) for f in out.get("failing", [])])

    @activity.defn(name="leases.set_paused")
    async def set_paused(self, inp: SetPausedInput) -> None:
        async with self.db.raw() as conn:
            row = await conn.fetchrow("SELECT id FROM dynamic_engines WHERE tenant_id = $1 AND id = $2",
                                      inp.tenant_id, inp.engine_id)
            if row is not None:
                await repo.set_paused(conn, inp.engine_id, inp.paused)

    @activity.defn(name="leases.retry")
    async def retry(self, inp: RetryInput) -> int:
        return await revocation.retry(self.state, inp.tenant_id, inp.engine_id, inp.lease_ids)

    @activity.defn(name="leases.reconcile")
    async def reconcile(self, inp: ReconcileInput) -> int:
        from services.dynamic import root

        await root.resume_pending(self.state, inp.late_seconds)  # interrupted root rotations roll forward
        async with self.db.raw() as conn:
            rows = await repo.late_engines(conn, inp.late_seconds)
        woke = 0
        for r in rows:
            if await revocation.wake(self.state, r["tenant_id"], r["id"], reason="reconcile"):
                woke += 1
        if rows:
            log.info("lease revokers reconciled", extra={"engines": len(rows), "woken": woke})
        return woke
