"""Inputs and outputs of the event relay and webhook delivery workflows (stdlib only: ids, never secrets).

No ``from __future__ import annotations`` here on purpose: the payload converter resolves these dataclasses'
type hints on every (de)serialisation, and string annotations cost an ``eval`` each time (measured on the
delivery hot path).
"""

from dataclasses import dataclass, field

DELIVERY_WORKFLOW = "WebhookDelivery"
RELAY_WORKFLOW = "EventRelay"
REDELIVER_SIGNAL = "redeliver"
ATTEMPTS_QUERY = "attempts"


@dataclass(frozen=True)
class DeliveryInput:
    tenant_id: str
    webhook_id: str
    event_id: str
    # Delay before retry 1, 2, ... (a snapshot of WEBHOOK_RETRY_SCHEDULE taken when the delivery started).
    retry_delays_ms: list[int] = field(default_factory=list)
    attempt_timeout_seconds: int = 40
    # Run attempt 1 as a local activity (see workflows/events.py). An input field rather than
    # ``workflow.patched`` (no extra marker or search-attribute upsert per delivery); inputs from before this
    # field existed replay as False, i.e. with the regular activity they were recorded with.
    first_attempt_local: bool = False


@dataclass(frozen=True)
class DeliveryResult:
    status: str  # success | failed (dead-lettered) | gone (webhook disabled or deleted)
    attempts: int


@dataclass(frozen=True)
class AttemptInput:
    tenant_id: str
    webhook_id: str
    event_id: str
    attempt: int                 # 1-based within this workflow run
    next_delay_ms: int | None    # None: this is the last attempt; a failure dead-letters the delivery


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # success | retry | dead | gone
    response_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class RelayInput:
    run_seconds: int = 300
    heartbeat_seconds: int = 30
    iterations_per_run: int = 100  # then continue-as-new


@dataclass(frozen=True)
class RelayRunInput:
    run_seconds: int = 300


@dataclass(frozen=True)
class RelayRunResult:
    dispatched: int
