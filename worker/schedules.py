"""Idempotent create-or-update of the Temporal Schedules the platform relies on (run at every worker start).

* ``<prefix>housekeeping``: every HOUSEKEEPING_INTERVAL_SECONDS.
* ``<prefix>identity-sync``: every IDENTITY_SYNC_INTERVAL_MINUTES, a sweep that mirrors ScaiKey's partners and
  tenants and signals-with-start each tenant's ``scaikey-sync/<tenant>`` entity (so a new deployment, and a
  tenant added in ScaiKey, sync without any manual call). Triggered once when first created
  (IDENTITY_SYNC_INITIAL_SWEEP; default on except ENV=test).
* ``<prefix>identity-sync-requeue``: every IDENTITY_SYNC_REQUEUE_SECONDS, re-dispatches sync requests the API
  stored while Temporal was unavailable (it answered 503 and kept the run row ``pending``).
* ``<prefix>pki-maintenance``: hourly on the ``pki`` queue: certificate.expiring at the thresholds (exactly once) and
  CRL rebuilds before nextUpdate (workflows/pki.py, docs/pki.md).
* ``<prefix>rotation-reconcile``: every minute on the ``rotation`` queue: starts per-secret rotation workflows the
  API could not start (Temporal unavailable when the secret was attached; docs/rotation.md).
* ``<prefix>lease-reconcile``: every DYNAMIC_RECONCILE_SECONDS on the ``leases`` queue: starts the revoker of any
  engine with an overdue lease (workflows/dynamic.py, docs/dynamic.md).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from core.settings import Settings
from worker.registry import HOUSEKEEPING, IDENTITY, LEASES, PKI, ROTATION
from worker.visibility import schedule_options
from workflows.types.housekeeping import HousekeepingInput
from workflows.types.identity import SCHEDULED_WORKFLOW, ScheduledSyncInput
from workflows.types.pki import MAINTENANCE_INTERVAL_SECONDS, MAINTENANCE_WORKFLOW, MaintenanceInput

log = logging.getLogger("scaivault.worker")


def housekeeping_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}housekeeping"


def identity_sync_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}identity-sync"


def identity_requeue_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}identity-sync-requeue"


def pki_maintenance_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}pki-maintenance"


def _pki(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(MAINTENANCE_WORKFLOW, MaintenanceInput(),
                                           id=pki_maintenance_schedule_id(settings),
                                           task_queue=settings.task_queue(PKI),
                                           **schedule_options(settings, area="pki", summary="PKI maintenance: "
                                                              "expiry notices and CRL rebuilds")),
        spec=_every(MAINTENANCE_INTERVAL_SECONDS),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def lease_reconcile_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}lease-reconcile"


def _lease_reconcile(settings: Settings) -> Schedule:
    """Every DYNAMIC_RECONCILE_SECONDS on the ``leases`` queue: start the revoker of any engine with an overdue
    lease (issued while Temporal was unreachable, or a lost workflow); docs/dynamic.md."""
    from workflows.types.dynamic import RECONCILE_WORKFLOW, ReconcileInput

    return Schedule(
        action=ScheduleActionStartWorkflow(RECONCILE_WORKFLOW, ReconcileInput(),
                                           id=lease_reconcile_schedule_id(settings),
                                           task_queue=settings.task_queue(LEASES),
                                           **schedule_options(settings, area="lease", summary="lease reconcile: "
                                                              "starts revokers of engines with overdue leases")),
        spec=_every(settings.dynamic_reconcile_seconds),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def rotation_reconcile_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue_prefix}rotation-reconcile"


def _rotation_reconcile(settings: Settings) -> Schedule:
    """Every minute on the ``rotation`` queue: start the per-secret workflows whose start the API could not get
    acknowledged (docs/rotation.md)."""
    from workflows.types.rotation import RECONCILE_INTERVAL_SECONDS, RECONCILE_WORKFLOW, ReconcileInput

    return Schedule(
        action=ScheduleActionStartWorkflow(RECONCILE_WORKFLOW, ReconcileInput(),
                                           id=rotation_reconcile_schedule_id(settings),
                                           task_queue=settings.task_queue(ROTATION),
                                           **schedule_options(settings, area="rotation", summary="rotation "
                                                              "reconcile: starts unacknowledged rotation workflows")),
        spec=_every(RECONCILE_INTERVAL_SECONDS),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def _every(seconds: float) -> ScheduleSpec:
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=max(1.0, seconds)))])


def _housekeeping(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "Housekeeping",
            HousekeepingInput(),
            id=housekeeping_schedule_id(settings),
            task_queue=settings.task_queue(HOUSEKEEPING),
            **schedule_options(settings, area="housekeeping", summary="housekeeping sweeps (every registered sweeper)"),
        ),
        spec=_every(settings.housekeeping_interval_seconds),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def _identity(settings: Settings, *, sweep: bool) -> Schedule:
    sid = identity_sync_schedule_id(settings) if sweep else identity_requeue_schedule_id(settings)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_WORKFLOW,
            ScheduledSyncInput(sweep=sweep, requeue_after_seconds=settings.identity_sync_requeue_seconds,
                               heartbeat_timeout_seconds=settings.identity_sync_heartbeat_seconds),
            id=sid,
            task_queue=settings.task_queue(IDENTITY),
            **schedule_options(settings, area="sync", summary="scheduled ScaiKey identity sweep" if sweep
                               else "re-dispatch of identity syncs stored while Temporal was unavailable"),
        ),
        spec=_every(settings.identity_sync_interval_minutes * 60 if sweep else settings.identity_sync_requeue_seconds),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def _ensure(client: Client, sid: str, schedule: Schedule, *, trigger_on_create: bool = False) -> None:
    """Create the schedule, or update it to ``schedule`` if it exists (settings may have changed)."""
    try:
        await client.create_schedule(sid, schedule, trigger_immediately=trigger_on_create)
        log.info("created schedule", extra={"schedule_id": sid})
    except ScheduleAlreadyRunningError:
        async def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(update)


async def ensure_schedules(client: Client, settings: Settings) -> None:
    from services.events.relay import ensure_relay

    await ensure_relay(client, settings)
    await _ensure(client, housekeeping_schedule_id(settings), _housekeeping(settings))
    # First creation (a fresh deployment): sweep at once, so every tenant's entity runs right after `make dev`.
    await _ensure(client, identity_sync_schedule_id(settings), _identity(settings, sweep=True),
                  trigger_on_create=settings.identity_sync_sweep_on_create)
    await _ensure(client, identity_requeue_schedule_id(settings), _identity(settings, sweep=False))
    await _ensure(client, pki_maintenance_schedule_id(settings), _pki(settings))
    await _ensure(client, rotation_reconcile_schedule_id(settings), _rotation_reconcile(settings))
    await _ensure(client, lease_reconcile_schedule_id(settings), _lease_reconcile(settings))
