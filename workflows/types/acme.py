"""Payloads of the managed-certificate workflow (``cert-renewal/<tenant>/<cert>``, pki task queue). Ids, dates and
error codes only: no account key, DNS credential, key authorization or certificate key ever enters Temporal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

MANAGED_WORKFLOW = "acme.managed_certificate"
RENEW_NOW_SIGNAL = "renew_now"
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
STATE_QUERY = "state"


def renewal_point(not_before: datetime, not_after: datetime, renew_before: float | None) -> datetime:
    """``not_after - renew_before`` if configured, else ``not_after - 30d`` for certificates living over 90 days,
    else ``not_after - max(lifetime / 3, 1h)`` (a 7-day certificate renews ~2.3 days early)."""
    if renew_before is not None:
        return not_after - timedelta(seconds=renew_before)
    lifetime = not_after - not_before
    if lifetime > timedelta(days=90):
        return not_after - timedelta(days=30)
    return not_after - max(lifetime / 3, timedelta(hours=1))


@dataclass
class ErrorInfo:
    code: str
    message: str
    at: str | None = None
    retry_after_seconds: float | None = None


@dataclass
class ManagedState:
    status: str = "ordering"  # ordering | waiting | backoff | paused | stopped | failed (internal: gave up)
    current_certificate_id: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    next_renewal: str | None = None
    next_retry_at: str | None = None
    current_order_id: str | None = None
    order_tries: int = 0
    attempts: int = 0  # failed attempts since the last success
    last_attempt_at: str | None = None
    last_error: ErrorInfo | None = None
    renewals: int = 0
    paused: bool = False
    auto_renew: bool = True
    renew_before_seconds: float | None = None
    history: list[str] = field(default_factory=list)  # certificate ids, oldest first (last 20)


@dataclass
class ManagedInput:
    tenant_id: str
    managed_id: str
    order_id: str
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    max_order_tries: int = 3
    heartbeat_timeout_seconds: float = 30.0
    state: ManagedState | None = None
    kind: str = "acme"  # "acme" (orders against an ACME CA) | "internal" (re-issued by the tenant's own CA)


@dataclass
class InternalRenewInput:
    """Re-issue ``from_certificate_id`` (an internal-CA leaf) through its role; ``attempt`` counts failures."""
    tenant_id: str
    managed_id: str
    from_certificate_id: str
    attempt: int


@dataclass
class InternalFailureInput:
    tenant_id: str
    managed_id: str
    from_certificate_id: str
    code: str
    message: str
    attempt: int
    final: bool


@dataclass
class RunOrderInput:
    tenant_id: str
    order_id: str
    attempt: int


@dataclass
class RunOrderResult:
    certificate_id: str
    not_before: str
    not_after: str
    renewed: bool
    auto_renew: bool
    renew_before_seconds: float | None


@dataclass
class FailureInput:
    tenant_id: str
    order_id: str
    code: str
    message: str
    attempt: int
    abandon: bool


@dataclass
class RenewalOrderInput:
    tenant_id: str
    managed_id: str
    from_certificate_id: str
    previous_order_id: str
