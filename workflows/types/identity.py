"""Inputs, outputs and state of the ScaiKey identity-sync workflows (stdlib only: passes the sandbox)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SYNC_WORKFLOW = "ScaiKeySync"
SWEEP_WORKFLOW = "ScaiKeySyncSweep"
SCHEDULED_WORKFLOW = "ScaiKeySyncScheduled"  # started by the identity-sync Schedules (worker/schedules.py)


@dataclass
class ForceSync:
    """Signal ``force_sync``: run a sync now and record it under ``sync_id``."""

    sync_id: str
    reason: str = ""
    trigger: str = "manual"  # manual | webhook | sweep | schedule


@dataclass
class SyncState:
    """The whole state of one tenant's ``scaikey-sync/<tenant>`` entity; also its continue-as-new input."""

    tenant_id: str
    interval_seconds: int = 3600
    heartbeat_timeout_seconds: int = 30
    retry_attempts: int = 5
    pending: list[ForceSync] = field(default_factory=list)
    recent_sync_ids: list[str] = field(default_factory=list)  # de-duplicates redelivered signals
    running: bool = False
    last_sync_id: str | None = None
    last_status: str | None = None  # succeeded | failed | skipped
    last_error: str | None = None
    last_stats: dict[str, Any] = field(default_factory=dict)
    last_started_at: str | None = None
    last_finished_at: str | None = None
    runs: int = 0


@dataclass(frozen=True)
class RunSyncInput:
    tenant_id: str
    sync_ids: list[str]
    trigger: str = "schedule"
    reason: str = ""


@dataclass(frozen=True)
class RunSyncResult:
    status: str  # succeeded | skipped
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordFailureInput:
    tenant_id: str
    sync_ids: list[str]
    error: str
    trigger: str = "schedule"


@dataclass(frozen=True)
class SweepInput:
    sync_id: str
    partner_id: str | None = None
    reason: str = ""
    heartbeat_timeout_seconds: int = 30
    trigger: str = "sweep"  # sweep (requested through the API) | schedule


@dataclass(frozen=True)
class ScheduledSyncInput:
    """What a Schedule starts: re-dispatch sync requests stranded while Temporal was unavailable, then (``sweep``)
    a full sweep that discovers tenants and signals-with-start each one's entity."""

    sweep: bool = True
    requeue_after_seconds: int = 60
    heartbeat_timeout_seconds: int = 30


@dataclass(frozen=True)
class RequeueInput:
    older_than_seconds: int = 60
    limit: int = 500


@dataclass(frozen=True)
class ScheduledSyncResult:
    requeued: int = 0
    tenant_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SweepResult:
    tenant_ids: list[str] = field(default_factory=list)
    error: str | None = None
