"""Rotation activities: load the timer plan from PostgreSQL, record a once-per-cycle mark with its event,
rotate (generate + write through the secrets path, idempotent per cycle), record a failure.

Idempotent: marks are unique per (secret, cycle, mark) and written with their event in one transaction; a
rotation's version carries its cycle as idempotency key (services/rotation/rotate.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity

from audit.recorder import recorder_for, system_context
from core.errors import AppError, to_application_error
from core.ids import new_id
from core.settings import Settings
from db.engine import Database
from repositories import rotation as repo
from repositories.events import outbox
from services.rotation import policies as pol
from services.rotation.rotate import SYSTEM_JOB, rotate_auto, worker_state
from workflows.types.rotation import (
    FailureInput,
    MarkInput,
    Plan,
    PlanInput,
    ReconcileInput,
    RotateInput,
    RotateResult,
    Threshold,
)

log = logging.getLogger("scaivault.rotation")
HEARTBEAT_SECONDS = 5.0


async def _heartbeats() -> None:
    """Key generation can be slow: heartbeat so a dead worker is noticed after the heartbeat timeout."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_SECONDS)


def _wf_id() -> str | None:
    try:
        return activity.info().workflow_id
    except RuntimeError:  # called outside an activity (unit use)
        return None


class RotationActivities:
    def __init__(self, settings: Settings, db: Database, redis: Any = None, temporal: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.temporal = temporal
        self.state = worker_state(settings, db, redis)
        self.audit = recorder_for(settings, db)

    @activity.defn(name="rotation_scheduler.load_plan")
    async def load_plan(self, inp: PlanInput) -> Plan:
        async with self.db.raw() as conn:
            a = await repo.assignment(conn, inp.secret_id)
            if a is None or a["tenant_id"] != inp.tenant_id:
                return Plan(attached=False)
            p = await repo.get_policy(conn, inp.tenant_id, a["policy_id"])
            if p is None:
                return Plan(attached=False)
            marks = await repo.marks(conn, inp.secret_id, a["cycle"])
        return Plan(
            attached=True, policy_id=p["id"], secret_live=a["deleted_at"] is None, is_active=p["is_active"],
            auto_generate=p["auto_generate"], cycle=a["cycle"], anchor_at=pol.iso(a["anchor_at"]) or "",
            interval_seconds=p["interval_seconds"], grace_seconds=p["grace_seconds"],
            thresholds=[Threshold(label, s) for label, s in pol.parse_thresholds(p["warn_before"])],
            marks=marks, status=a["status"])

    @activity.defn(name="rotation_scheduler.mark")
    async def mark(self, inp: MarkInput) -> bool:
        """Record ``inp.mark`` for the cycle and emit its event, once. False when already recorded or stale."""
        async with self.db.raw() as conn, conn.transaction():
            a = await repo.assignment(conn, inp.secret_id, for_update=True)
            if a is None or a["cycle"] != inp.cycle:
                return False
            p = await repo.get_policy(conn, inp.tenant_id, a["policy_id"])
            if p is None:
                return False
            for skipped in inp.skipped:
                await repo.add_mark(conn, inp.secret_id, inp.cycle, skipped, emitted=False)
            if not await repo.add_mark(conn, inp.secret_id, inp.cycle, inp.mark):
                return False
            due_at = a["anchor_at"] + timedelta(seconds=p["interval_seconds"])
            base = {"rotation_policy_id": p["id"], "rotation_policy_name": p["name"], "due_at": pol.iso(due_at),
                    "current_version": a["current_version"], "cycle": inp.cycle}
            if inp.mark == "overdue":
                event_type = "rotation.overdue"
                data = {**base, "overdue_since": pol.iso(datetime.now(UTC))}
                await repo.set_status(conn, inp.secret_id, "overdue")
            else:
                due_now = inp.mark == "due"
                event_type = "rotation.due"
                data = {**base, "threshold": None if due_now else inp.mark,
                        "warn_before": None if due_now else inp.mark, "due_now": due_now, "trigger": inp.trigger}
                if due_now:
                    await repo.set_status(conn, inp.secret_id, "due")
            await outbox.emit(conn, event_type=event_type, tenant_id=inp.tenant_id, partner_id=a["partner_id"],
                              identity_id=f"system:{SYSTEM_JOB}", path=a["path"], data=data, request_id=_wf_id())
        return True

    @activity.defn(name="rotation_scheduler.rotate")
    async def rotate(self, inp: RotateInput) -> RotateResult:
        beat = asyncio.get_running_loop().create_task(_heartbeats())
        try:
            out = await rotate_auto(self.state, tenant_id=inp.tenant_id, secret_id=inp.secret_id, cycle=inp.cycle,
                                    rotated_at=datetime.fromisoformat(inp.rotated_at.replace("Z", "+00:00")),
                                    trigger=inp.trigger, history_id=inp.history_id, workflow_id=_wf_id())
        except AppError as exc:
            raise to_application_error(exc) from None
        finally:
            beat.cancel()
        pause = self.settings.rotation_crash_test_pause_seconds
        if pause > 0:  # tests only: the version is committed, the result not yet recorded (crash test window)
            log.warning("rotation written; pausing before reporting", extra={"secret_id": inp.secret_id,
                                                                             "cycle": inp.cycle, "seconds": pause})
            await asyncio.sleep(pause)
        return RotateResult(status=out["status"], old_version=out.get("old_version"),
                            new_version=out.get("new_version"))

    @activity.defn(name="rotation_scheduler.reconcile")
    async def reconcile(self, inp: ReconcileInput) -> int:
        from services.rotation.schedule import reconcile

        return await reconcile(self.db, self.temporal, self.settings, inp.limit, heartbeat=activity.heartbeat)

    @activity.defn(name="rotation_scheduler.record_failure")
    async def record_failure(self, inp: FailureInput) -> None:
        """History row (the pending one when a manual rotation failed), ``rotation.failed``, audit, status."""
        error = {"code": inp.code, "message": inp.message[:500]}
        async with self.db.raw() as conn, conn.transaction():
            a = await repo.assignment(conn, inp.secret_id, for_update=True)
            if a is None:
                return
            # one failure record per (cycle, attempt), however often this activity is retried
            if not await repo.add_mark(conn, inp.secret_id, inp.cycle, f"failed:{inp.attempt}"):
                return
            p = await repo.get_policy(conn, inp.tenant_id, a["policy_id"])
            now = datetime.now(UTC)
            h = await repo.update_history(conn, inp.history_id, status="failed", error=error, completed_at=now,
                                          attempt=inp.attempt) if inp.history_id else None
            if h is None:
                h = await repo.insert_history(conn, id=new_id("rh"), tenant_id=inp.tenant_id, policy_id=a["policy_id"],
                                              secret_id=inp.secret_id, secret_path=a["path"], cycle=inp.cycle,
                                              status="failed", trigger=inp.trigger,
                                              old_version=a["current_version"],
                                              auto_generated=bool(p and p["auto_generate"]), completed_at=now,
                                              error=error, attempt=inp.attempt)
            await repo.set_status(conn, inp.secret_id, "failed", error)
            await outbox.emit(conn, event_type="rotation.failed", tenant_id=inp.tenant_id, partner_id=a["partner_id"],
                              identity_id=f"system:{SYSTEM_JOB}", path=a["path"], request_id=_wf_id(), data={
                                  "rotation_policy_id": a["policy_id"],
                                  "rotation_policy_name": p["name"] if p else None, "error": error,
                                  "attempt": inp.attempt, "cycle": inp.cycle, "history_id": h["id"]})
            ctx = system_context(SYSTEM_JOB, inp.tenant_id, partner_id=a["partner_id"], workflow_id=_wf_id())
            await self.audit.record(ctx, action="rotate", path=a["path"], permission="write", success=False,
                                    error_code=inp.code if inp.code in _KNOWN else "internal_error",
                                    extra={"rotation_policy_id": a["policy_id"], "cycle": inp.cycle,
                                           "attempt": inp.attempt, "history_id": h["id"]}, conn=conn)


_KNOWN = {"secret_not_found", "rotation_policy_not_found", "secret_policy_not_found", "validation_error",
          "invalid_secret_type", "kms_unavailable", "internal_error", "service_unavailable", "audit_unavailable"}
