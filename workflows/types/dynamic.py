"""Inputs, outputs and state of the per-engine lease revoker workflow (stdlib only: passes the sandbox).

Payloads carry ids only (tenant, engine id, lease ids); never a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REVOKER_WORKFLOW = "LeaseRevoker"
STATE_QUERY = "state"
WAKE_SIGNAL = "wake"
PAUSE_SIGNAL = "pause_revocation"
RESUME_SIGNAL = "resume_revocation"
RETRY_SIGNAL = "retry_failed"


@dataclass(frozen=True)
class RevokerInput:
    tenant_id: str
    engine_id: str
    idle_seconds: int = 300           # re-check PostgreSQL at least this often (a lost wake costs at most this)
    iterations_before_continue: int = 500


RECONCILE_WORKFLOW = "LeaseReconcile"


@dataclass(frozen=True)
class ReconcileInput:
    late_seconds: int = 30  # a due lease this late means its engine's revoker is not running: start it


@dataclass(frozen=True)
class Wake:
    reason: str = ""


@dataclass(frozen=True)
class Pause:
    reason: str = ""


@dataclass(frozen=True)
class RetryFailed:
    lease_ids: list[str] = field(default_factory=list)  # empty: every failing lease of the engine


@dataclass(frozen=True)
class RevokeDueInput:
    tenant_id: str
    engine_id: str


@dataclass(frozen=True)
class FailingLease:
    lease_id: str
    attempts: int
    status: str
    last_error: str


@dataclass(frozen=True)
class RevokeDueResult:
    engine_exists: bool = True
    paused: bool = False
    revoked: int = 0
    failed: int = 0
    more_due: bool = False
    next_due_in_seconds: float | None = None  # None: nothing live
    engine_deleted: bool = False
    failing: list[FailingLease] = field(default_factory=list)


@dataclass(frozen=True)
class SetPausedInput:
    tenant_id: str
    engine_id: str
    paused: bool


@dataclass(frozen=True)
class RetryInput:
    tenant_id: str
    engine_id: str
    lease_ids: list[str] = field(default_factory=list)


@dataclass
class RevokerState:
    engine_id: str
    paused: bool = False
    revoked_total: int = 0
    failed_attempts_total: int = 0
    last_run_at: str | None = None
    next_due_in_seconds: float | None = None
    failing: list[FailingLease] = field(default_factory=list)
