"""The one registry of task queues, workflows and activities. ``scaivault worker`` serves every queue here
(or those named in SCAIVAULT_WORKER_QUEUES), so worker deployments can scale each concern separately.

Task queues are split by concern (settings.task_queue(concern) adds TEMPORAL_TASK_QUEUE_PREFIX).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.settings import Settings
from db.engine import Database

HOUSEKEEPING = "housekeeping"
IDENTITY = "identity"
EVENTS = "events"
PKI = "pki"
ROTATION = "rotation"
FEDERATION = "federation"
LEASES = "leases"


@dataclass
class WorkerDeps:
    """Built once per worker process and handed to activity classes."""

    settings: Settings
    db: Database
    redis: Any = None
    temporal: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueRegistration:
    concern: str
    workflows: Callable[[], list[type]]
    activities: Callable[[WorkerDeps], list[Callable[..., Any]]]


def _housekeeping_workflows() -> list[type]:
    from workflows.housekeeping import HousekeepingWorkflow

    return [HousekeepingWorkflow]


def _housekeeping_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.housekeeping import HousekeepingActivities

    acts = HousekeepingActivities(deps.settings, deps.db)
    return [acts.list_steps, acts.run_step]


def _identity_workflows() -> list[type]:
    from workflows.identity_sync import (
        ScaiKeySyncScheduledWorkflow,
        ScaiKeySyncSweepWorkflow,
        ScaiKeySyncWorkflow,
    )

    return [ScaiKeySyncWorkflow, ScaiKeySyncSweepWorkflow, ScaiKeySyncScheduledWorkflow]


def _identity_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.identity_sync import IdentitySyncActivities

    acts = IdentitySyncActivities(deps.settings, deps.db, redis=deps.redis, temporal=deps.temporal)
    return [acts.run_sync, acts.record_failure, acts.sweep, acts.requeue_pending]


def _events_workflows() -> list[type]:
    from workflows.events import EventRelayWorkflow, WebhookDeliveryWorkflow

    return [WebhookDeliveryWorkflow, EventRelayWorkflow]


def _events_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.events import EventActivities

    acts = EventActivities(deps.settings, deps.db, deps.temporal, deps.redis)
    return [acts.attempt_delivery, acts.run_relay]


def _rotation_workflows() -> list[type]:
    from workflows.rotation import RotationReconcileWorkflow, SecretRotationWorkflow

    return [SecretRotationWorkflow, RotationReconcileWorkflow]


def _rotation_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.rotation import RotationActivities

    acts = RotationActivities(deps.settings, deps.db, deps.redis, deps.temporal)
    return [acts.load_plan, acts.mark, acts.rotate, acts.record_failure, acts.reconcile]


def _pki_workflows() -> list[type]:
    from workflows.acme import ManagedCertificateWorkflow
    from workflows.pki import PkiMaintenanceWorkflow

    return [PkiMaintenanceWorkflow, ManagedCertificateWorkflow]


def _pki_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.acme import AcmeActivities
    from activities.pki import PkiActivities

    acts = PkiActivities(deps.settings, deps.db)
    acme = AcmeActivities(deps.settings, deps.db)
    return [acts.emit_expiring, acts.rebuild_crls, acme.run_order, acme.record_failure, acme.renewal_order,
            acme.renew_internal, acme.renew_internal_failed]


def _leases_workflows() -> list[type]:
    from workflows.dynamic import LeaseReconcileWorkflow, LeaseRevokerWorkflow

    return [LeaseRevokerWorkflow, LeaseReconcileWorkflow]


def _leases_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.dynamic import LeaseActivities

    acts = LeaseActivities(deps.settings, deps.db, deps.redis, deps.temporal)
    return [acts.revoke_due, acts.set_paused, acts.retry, acts.reconcile]


def _federation_workflows() -> list[type]:
    from workflows.federation import FederationSyncWorkflow

    return [FederationSyncWorkflow]


def _federation_activities(deps: WorkerDeps) -> list[Callable[..., Any]]:
    from activities.federation import FederationActivities

    acts = FederationActivities(deps.settings, deps.db, deps.redis)
    return [acts.run_sync]


REGISTRATIONS: list[QueueRegistration] = [
    QueueRegistration(HOUSEKEEPING, _housekeeping_workflows, _housekeeping_activities),
    QueueRegistration(IDENTITY, _identity_workflows, _identity_activities),
    QueueRegistration(EVENTS, _events_workflows, _events_activities),
    QueueRegistration(PKI, _pki_workflows, _pki_activities),
    QueueRegistration(ROTATION, _rotation_workflows, _rotation_activities),
    QueueRegistration(FEDERATION, _federation_workflows, _federation_activities),
    QueueRegistration(LEASES, _leases_workflows, _leases_activities),
]


def selected(names: str | None) -> list[QueueRegistration]:
    if not names:
        return list(REGISTRATIONS)
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    unknown = wanted - {r.concern for r in REGISTRATIONS}
    if unknown:
        raise ValueError(f"unknown task queue concern(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(r.concern for r in REGISTRATIONS)}")
    return [r for r in REGISTRATIONS if r.concern in wanted]
