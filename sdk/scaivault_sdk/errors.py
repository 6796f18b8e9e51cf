"""The SDK's one exception tree, mapped from the API's error envelope (core.md §8).

::

    ScaiVaultError
    ├── ConfigurationError          the client was built wrongly (no URL, no credentials)
    ├── TransportError              no HTTP answer (connection refused, timeout); ``may_have_been_applied``
    └── APIError                    an error envelope: status, code, message, details, request_id
        ├── AuthenticationError     401 authentication_required / token_expired / token_invalid / token_revoked
        ├── AccessDeniedError       403 access_denied, insufficient_scope, mfa_required, forbidden, ...
        ├── NotFoundError           404 secret_not_found, version_not_found, policy_not_found, ...
        ├── ValidationError         400 invalid_* and 422 validation_error (``fields``)
        ├── ConflictError           409 secret_exists, version_conflict, policy_in_use
        ├── RateLimitError          429 rate_limited (``retry_after`` seconds)
        └── ServerError             5xx
            ├── InternalError       500 internal_error
            └── ServiceUnavailableError  503 service_unavailable, kms_unavailable

Branch on the class for the HTTP class and on ``code`` for the exact reason. Messages never contain secret
values: the server does not put them in errors, and the SDK adds only method, path and status.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class ScaiVaultError(Exception):
    """Base of every exception the SDK raises."""


class ConfigurationError(ScaiVaultError):
    """The client cannot be used as configured (missing URL or credentials, bad option)."""


class TransportError(ScaiVaultError):
    """No HTTP response arrived.

    ``may_have_been_applied`` is False when the connection was never established (safe to retry anything),
    True when the request may have reached the server (only idempotent calls are retried then).
    """

    def __init__(self, message: str, *, may_have_been_applied: bool) -> None:
        super().__init__(message)
        self.may_have_been_applied = may_have_been_applied


class APIError(ScaiVaultError):
    """The server answered with an error envelope ``{"error": {code, message, details, request_id}}``."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 request_id: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" (request_id={request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.request_id = request_id
        self.headers: dict[str, str] = headers or {}

    def retry_after_hint(self) -> float | None:
        """Seconds the server asked the client to wait (``Retry-After`` or ``details.retry_after``), if any."""
        return retry_after_seconds(self.headers.get("retry-after"), self.details.get("retry_after"))


class AuthenticationError(APIError):
    """401: the token is missing, expired, invalid or revoked."""


class AccessDeniedError(APIError):
    """403: scopes or policies do not allow the call; ``details.failed_condition`` names a failed condition."""


class NotFoundError(APIError):
    """404: the resource does not exist (or is not visible to the caller; both answer the same)."""


class ValidationError(APIError):
    """400/422: the request was rejected as malformed; ``fields`` lists field errors for validation_error."""

    @property
    def fields(self) -> list[Any]:
        value = self.details.get("fields")
        return list(value) if isinstance(value, list) else []


class ConflictError(APIError):
    """409: secret_exists, version_conflict (re-read, then retry yourself), policy_in_use."""


class RateLimitError(APIError):
    """429: the identity's bucket for this endpoint category is empty; retry after ``retry_after`` seconds."""

    @property
    def retry_after(self) -> float | None:
        return self.retry_after_hint()


class ServerError(APIError):
    """5xx."""


class InternalError(ServerError):
    """500 internal_error: retried once for calls that are safe to repeat."""


class ServiceUnavailableError(ServerError):
    """503: a dependency of the server is down; back off and retry."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError, 401: AuthenticationError, 403: AccessDeniedError, 404: NotFoundError,
    405: ValidationError, 409: ConflictError, 413: ValidationError, 415: ValidationError, 422: ValidationError, 429: RateLimitError,
    500: InternalError, 503: ServiceUnavailableError,
}


def retry_after_seconds(header: str | None, detail: Any = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date) or ``details.retry_after``."""
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                import time

                return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    if isinstance(detail, int | float) and not isinstance(detail, bool):
        return max(0.0, float(detail))
    return None


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for a non-2xx response; a body without the envelope still maps by status."""
    code, message, request_id = f"http_{response.status_code}", response.reason_phrase, None
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        details = err.get("details") if isinstance(err.get("details"), dict) else {}
        request_id = err.get("request_id")
    request_id = request_id or response.headers.get("x-request-id")
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    headers = {k.lower(): v for k, v in response.headers.items()}
    return cls(status, code, message, details, request_id, headers)
