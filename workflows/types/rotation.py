"""Inputs, outputs and state of the per-secret rotation workflow (stdlib only: passes the sandbox).

Payloads carry ids only (tenant, secret id, policy id, history id); never a path's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROTATION_WORKFLOW = "SecretRotation"
STATE_QUERY = "state"
ROTATE_NOW_SIGNAL = "rotate_now"
RESCHEDULE_SIGNAL = "reschedule"
RECONCILE_WORKFLOW = "RotationReconcile"  # started by the rotation-reconcile Schedule (worker/schedules.py)
RECONCILE_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class ReconcileInput:
    """Start the workflows of attachments whose start the API could not get acknowledged (Temporal down)."""

    limit: int = 500


@dataclass(frozen=True)
class RotationInput:
    tenant_id: str
    secret_id: int
    failure_backoff_seconds: int = 300
    max_failure_backoff_seconds: int = 86400
    iterations_before_continue: int = 200
    failures: int = 0  # consecutive failures carried across continue-as-new (attempt numbers stay unique)


@dataclass(frozen=True)
class RotateNow:
    """Signal ``rotate_now``: rotate at once (``history_id`` is the pending history row the API created)."""

    history_id: str
    trigger: str = "manual"


@dataclass(frozen=True)
class Reschedule:
    """Signal ``reschedule``: the policy or assignment changed (or an outside write landed); reload the plan."""

    reason: str = ""


@dataclass(frozen=True)
class PlanInput:
    tenant_id: str
    secret_id: int


@dataclass(frozen=True)
class Threshold:
    label: str  # "7d"
    seconds: int


@dataclass(frozen=True)
class Plan:
    """What the workflow's timers are computed from, read from PostgreSQL (the source of truth)."""

    attached: bool
    policy_id: str | None = None
    secret_live: bool = True  # False while the secret is soft-deleted
    is_active: bool = True
    auto_generate: bool = False
    cycle: int = 1
    anchor_at: str = ""  # ISO-8601 UTC
    interval_seconds: int = 0
    grace_seconds: int = 0
    thresholds: list[Threshold] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)  # marks already recorded for this cycle
    status: str = "scheduled"


@dataclass(frozen=True)
class MarkInput:
    """Record ``mark`` for ``cycle`` and emit its event (once); ``skipped`` marks are recorded without one."""

    tenant_id: str
    secret_id: int
    cycle: int
    mark: str  # a warn_before label | due | overdue | failed
    skipped: list[str] = field(default_factory=list)
    trigger: str = "schedule"
    history_id: str | None = None


@dataclass(frozen=True)
class RotateInput:
    tenant_id: str
    secret_id: int
    cycle: int
    rotated_at: str  # workflow time: the new cycle anchor
    trigger: str = "schedule"
    history_id: str | None = None


@dataclass(frozen=True)
class RotateResult:
    status: str  # success | replayed (the cycle's version already existed) | stale (cycle already advanced)
    old_version: int | None = None
    new_version: int | None = None


@dataclass(frozen=True)
class FailureInput:
    tenant_id: str
    secret_id: int
    cycle: int
    code: str
    message: str
    attempt: int = 1
    trigger: str = "schedule"
    history_id: str | None = None


@dataclass
class RotationState:
    """Query ``state``."""

    tenant_id: str
    secret_id: int
    policy_id: str | None = None
    status: str = "starting"  # scheduled | due | overdue | failed | paused | detached
    cycle: int = 0
    anchor_at: str | None = None
    next_due_at: str | None = None
    next_action: str | None = None
    next_action_at: str | None = None
    thresholds_fired: list[str] = field(default_factory=list)
    last_result: str | None = None
    last_error: dict[str, str] | None = None
    failures: int = 0
    rotations: int = 0
