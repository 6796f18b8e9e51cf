"""The per-secret rotation workflow from the outside: its id, signal-with-start, and the reconcile that starts
workflows whose start was not acknowledged (Temporal down when the secret was attached).

Workflow id ``<prefix>rotation/<tenant_id>/<secret_id>`` (the secret's row id: stable across renames and never
reused by a deleted-and-recreated path). Signals: ``reschedule`` (reload the plan from PostgreSQL: a policy
change, an attach, an outside write), ``rotate_now`` (a manual rotation, carrying its pending history id).
"""

from __future__ import annotations

import logging
from typing import Any

from core.settings import Settings
from db.engine import Database
from repositories import rotation as repo
from workflows.types.rotation import (
    RESCHEDULE_SIGNAL,
    ROTATE_NOW_SIGNAL,
    ROTATION_WORKFLOW,
    Reschedule,
    RotateNow,
    RotationInput,
)

log = logging.getLogger("scaivault.rotation")
ROTATION_QUEUE = "rotation"


def workflow_id(settings: Settings, tenant_id: str, secret_id: int) -> str:
    return f"{settings.temporal_task_queue_prefix}rotation/{tenant_id}/{secret_id}"


def workflow_input(settings: Settings, tenant_id: str, secret_id: int) -> RotationInput:
    return RotationInput(tenant_id=tenant_id, secret_id=secret_id,
                         failure_backoff_seconds=settings.rotation_failure_backoff_seconds)


async def signal(temporal: Any, settings: Settings, tenant_id: str, secret_id: int, *,
                 rotate: RotateNow | None = None, reason: str = "") -> None:
    """Signal-with-start: starts the secret's workflow if it is not running, then signals it."""
    from worker.client import with_deadline
    from worker.visibility import start_options

    name, arg = (ROTATE_NOW_SIGNAL, rotate) if rotate is not None else (RESCHEDULE_SIGNAL, Reschedule(reason))
    # applied when this call starts the workflow (signal-with-start); a running one keeps its own
    visibility = start_options(settings, area="rotation", tenant_id=tenant_id, resource_id=str(secret_id),
                               summary=f"rotation schedule of secret {secret_id}")
    await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
        ROTATION_WORKFLOW, workflow_input(settings, tenant_id, secret_id),
        id=workflow_id(settings, tenant_id, secret_id), task_queue=settings.task_queue(ROTATION_QUEUE),
        start_signal=name, start_signal_args=[arg], rpc_timeout=rpc_timeout, **visibility,
    ), action=f"rotation.{name}")


INLINE_SIGNALS = 100  # a request signals at most this many workflows itself; the reconcile Schedule does the rest


async def notify(db: Database, temporal: Any, settings: Settings, tenant_id: str, secret_ids: list[int], *,
                 reason: str, rotate: dict[int, RotateNow] | None = None, strict: bool = False) -> None:
    """After a committed change: wake (or start) each affected workflow and record that it runs.

    Up to INLINE_SIGNALS plain wake-ups are sent here; a larger fan-out (a policy edit with thousands of
    attached secrets) marks the rest unstarted and triggers the ``rotation-reconcile`` Schedule, which signals
    them in batches, so one request never does 100,000 RPCs. ``rotate_now`` requests are always sent here. With
    ``strict`` a Temporal failure is raised (503; the change itself is kept); otherwise it is logged and the
    reconcile delivers the wake-up later."""
    if not secret_ids:
        return
    rotate = rotate or {}
    inline = [sid for sid in secret_ids if sid in rotate] + [sid for sid in secret_ids if sid not in rotate]
    later = [sid for sid in inline[INLINE_SIGNALS:] if sid not in rotate]
    inline = [sid for sid in inline if sid not in set(later)]
    if later:
        async with db.raw() as conn:
            await repo.mark_unstarted(conn, later)
    if temporal is None:
        return
    started: list[int] = []
    try:
        for sid in inline:
            await signal(temporal, settings, tenant_id, sid, rotate=rotate.get(sid), reason=reason)
            started.append(sid)
    except Exception:
        if strict:
            raise
        log.warning("could not signal rotation workflows; the reconcile will", extra={"count": len(secret_ids)})
    finally:
        if started:
            async with db.raw() as conn:
                await repo.mark_started(conn, started)
    if later:
        await _trigger_reconcile(temporal, settings)


async def _trigger_reconcile(temporal: Any, settings: Settings) -> None:
    try:
        await temporal.get_schedule_handle(f"{settings.temporal_task_queue_prefix}rotation-reconcile").trigger()
    except Exception:  # it runs every minute anyway
        log.warning("could not trigger the rotation reconcile; it runs within a minute")


async def reconcile(db: Database, temporal: Any, settings: Settings, limit: int = 500, *,
                    concurrency: int = 20, heartbeat: Any = None) -> int:
    """Signal-with-start every attachment whose start (or latest wake-up) was never acknowledged, in batches of
    ``limit``, until none is left."""
    import asyncio

    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(r: Any) -> int | None:
        async with sem:
            try:
                await signal(temporal, settings, r["tenant_id"], r["secret_id"], reason="reconcile")
                return int(r["secret_id"])
            except Exception:
                log.warning("rotation reconcile could not signal a workflow", extra={"secret_id": r["secret_id"]})
                return None

    while True:
        async with db.raw() as conn:
            rows = await repo.unstarted(conn, limit)
        if not rows:
            return done
        ok = [sid for sid in await asyncio.gather(*(one(r) for r in rows)) if sid is not None]
        if ok:
            async with db.raw() as conn:
                await repo.mark_started(conn, ok)
        done += len(ok)
        if heartbeat is not None:
            heartbeat(done)
        if len(ok) < len(rows):  # Temporal is failing: leave the rest to the next run
            return done
