"""Inputs, outputs and state of the federation sync workflow (stdlib only: passes the sandbox). Ids only: no
credential, path value or secret ever travels in a payload."""

from __future__ import annotations

from dataclasses import dataclass, field

SYNC_WORKFLOW = "FederationSync"
FORCE_SIGNAL = "force_sync"
STATE_QUERY = "status"


@dataclass
class ForceSync:
    """Signal ``force_sync``: run a sync as soon as the current one (if any) ends. Signals coalesce."""

    reason: str = "manual"


@dataclass
class SyncState:
    """The whole state of ``federation-sync/<tenant>/<backend>``; also its continue-as-new input."""

    tenant_id: str
    backend_id: str
    interval_seconds: int = 900
    heartbeat_timeout_seconds: int = 30
    pending: int = 0              # forced syncs requested since the last run started (coalesced into one)
    running: bool = False
    runs: int = 0
    failures_in_row: int = 0
    last_status: str | None = None  # succeeded | failed | gone
    last_error: str | None = None
    runs_since_continue: int = 0


@dataclass
class SyncInput:
    tenant_id: str
    backend_id: str
    trigger: str = "schedule"


@dataclass
class SyncResult:
    status: str                    # succeeded | failed | gone
    interval_seconds: int = 0      # the backend's current interval (a PATCH takes effect on the next wait)
    error: str | None = None
    retry_after_seconds: int = 0   # throttled / unavailable: back off this long before the next attempt
    counts: dict[str, int] = field(default_factory=dict)
