"""The single error registry: code -> HTTP status and retry class (spec core.md §8).

Services raise ``AppError(code, message, details)``. The API maps it once (api/errors.py) into the
envelope ``{"error": {"code", "message", "details", "request_id"}}``; activities raise Temporal
``ApplicationError``s carrying the same code (see ``to_application_error``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Retry = Literal["no", "rarely", "yes", "once"]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    status: int
    retry: Retry = "no"


_404 = ErrorSpec(404)
REGISTRY: dict[str, ErrorSpec] = {
    # 401
    "authentication_required": ErrorSpec(401),
    "token_expired": ErrorSpec(401),
    "token_invalid": ErrorSpec(401),
    "token_revoked": ErrorSpec(401),
    "invalid_signature": ErrorSpec(401),
    # 403
    "access_denied": ErrorSpec(403),
    "insufficient_scope": ErrorSpec(403),
    "mfa_required": ErrorSpec(403),
    "ip_not_allowed": ErrorSpec(403),
    "time_window_violation": ErrorSpec(403),
    "tenant_access_denied": ErrorSpec(403),
    "forbidden": ErrorSpec(403),
    # 400
    "invalid_request": ErrorSpec(400),
    "invalid_path": ErrorSpec(400),
    "invalid_secret_type": ErrorSpec(400),
    "invalid_duration": ErrorSpec(400),
    "invalid_cursor": ErrorSpec(400),
    "invalid_policy": ErrorSpec(400),
    "invalid_glob": ErrorSpec(400),
    "invalid_role": ErrorSpec(400),
    "invalid_config": ErrorSpec(400),
    "invalid_url": ErrorSpec(400),
    "invalid_event_type": ErrorSpec(400),
    # 422
    "validation_error": ErrorSpec(422),
    # 404
    "not_found": _404,
    "secret_not_found": _404,
    "version_not_found": _404,
    "policy_not_found": _404,
    "binding_not_found": _404,
    "webhook_not_found": _404,
    "delivery_not_found": _404,
    "subscription_not_found": _404,
    "rotation_policy_not_found": _404,
    "secret_policy_not_found": _404,
    "token_not_found": _404,
    "tenant_not_found": _404,
    "identity_not_found": _404,
    "sync_not_found": _404,
    "ca_not_found": _404,
    "certificate_not_found": _404,
    "csr_not_found": _404,
    "trust_anchor_not_found": _404,
    "acme_account_not_found": _404,
    "acme_order_not_found": _404,
    "dns_provider_not_found": _404,
    "engine_not_found": _404,
    "role_not_found": _404,
    "lease_not_found": _404,
    "backend_not_found": _404,
    "conflict_not_found": _404,
    # 405 / 409 / 413
    "method_not_allowed": ErrorSpec(405),
    "secret_exists": ErrorSpec(409),
    "version_conflict": ErrorSpec(409, "rarely"),
    "policy_in_use": ErrorSpec(409),
    "engine_in_use": ErrorSpec(409),  # a dynamic engine with live leases (docs/dynamic.md)
    "conflict": ErrorSpec(409),
    "federated_path_read_only": ErrorSpec(409),  # a write to a path a proxy-mode backend serves
    "payload_too_large": ErrorSpec(413),
    # 429
    "rate_limited": ErrorSpec(429, "yes"),
    "backend_rate_limited": ErrorSpec(429, "yes"),  # a federated backend or an ACME CA throttled us (§6.5, §3.6)
    # ACME (docs/acme.md): the CA could not validate a challenge; a DNS provider or the CA failed
    "acme_challenge_failed": ErrorSpec(422),
    "dns_provider_error": ErrorSpec(502, "yes"),
    "acme_backend_error": ErrorSpec(502, "yes"),
    # 5xx
    "internal_error": ErrorSpec(500, "once"),
    "decryption_failed": ErrorSpec(500),  # stored ciphertext failed authentication (tampered or moved row)
    "service_unavailable": ErrorSpec(503, "yes"),
    "kms_unavailable": ErrorSpec(503, "yes"),
    "audit_unavailable": ErrorSpec(503, "yes"),
    "webhook_secret_not_configured": ErrorSpec(503, "yes"),
}


class AppError(Exception):
    """A failure with a stable, documented code. The message never contains secret values."""

    __slots__ = ("code", "details", "headers", "message")

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code not in REGISTRY:
            raise KeyError(f"unregistered error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return REGISTRY[self.code].status

    @property
    def retryable(self) -> bool:
        return REGISTRY[self.code].retry in {"yes", "once", "rarely"}

    def __repr__(self) -> str:
        return f"AppError({self.code!r}, {self.message!r})"


def status_for(code: str) -> int:
    spec = REGISTRY.get(code)
    return spec.status if spec else 500


def to_application_error(err: AppError) -> Exception:
    """Map to a Temporal ApplicationError: business failures are non-retryable, transient ones retry."""
    from temporalio.exceptions import ApplicationError

    return ApplicationError(
        err.message, {"code": err.code, "details": err.details}, type=err.code, non_retryable=not err.retryable
    )
