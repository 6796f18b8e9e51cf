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

    name, arg = (ROTATE_NOW_SIGNAL, rotate) if rotate is not None else (RESCHEDULE_SIGNAL, Reschedule(reason))
    await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
        ROTATION_WORKFLOW, workflow_input(settings, tenant_id, secret_id),
        id=workflow_id(settings, tenant_id, secret_id), task_queue=settings.task_queue(ROTATION_QUEUE),
        start_signal=name, start_signal_args=[arg], rpc_timeout=rpc_timeout,
    ), action=f"rotation.{name}")


async def notify(db: Database, temporal: Any, settings: Settings, tenant_id: str, secret_ids: list[int], *,
                 reason: str, rotate: dict[int, RotateNow] | None = None, strict: bool = False) -> None:
    """After a committed change: wake (or start) each affected workflow and record that it runs. With ``strict``
    a Temporal failure is raised (503, the change itself is kept); otherwise it is logged, and the reconcile
    (:func:`reconcile`, run by the rotation Schedule) starts the workflow later."""
    if temporal is None or not secret_ids:
        return
    started: list[int] = []
    try:
        for sid in secret_ids:
            await signal(temporal, settings, tenant_id, sid, rotate=(rotate or {}).get(sid), reason=reason)
            started.append(sid)
    except Exception:
        if strict:
            raise
        log.warning("could not signal rotation workflows; the reconcile will", extra={"count": len(secret_ids)})
    finally:
        if started:
            async with db.raw() as conn:
                await repo.mark_started(conn, started)


async def reconcile(db: Database, temporal: Any, settings: Settings, limit: int = 500) -> int:
    """Start the workflows of attachments whose start was never acknowledged."""
    async with db.raw() as conn:
        rows = await repo.unstarted(conn, limit)
    done = 0
    for r in rows:
        try:
            await signal(temporal, settings, r["tenant_id"], r["secret_id"], reason="reconcile")
        except Exception:
            log.warning("rotation reconcile could not start a workflow", extra={"secret_id": r["secret_id"]})
            continue
        async with db.raw() as conn:
            await repo.mark_started(conn, [r["secret_id"]])
        done += 1
    return done
