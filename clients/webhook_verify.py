"""Verify ScaiVault webhook deliveries (receiver side). Standard library only: copy this file into a receiver.

Scheme (spec lifecycle.md §5.4)::

    X-ScaiVault-Timestamp: 1714478400                       (Unix seconds, fresh on every attempt)
    X-ScaiVault-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + raw_body)>

Usage::

    from webhook_verify import VerificationError, verify
    try:
        verify(request_body_bytes, request_headers, secrets=[current_secret, previous_secret])
    except VerificationError as exc:
        return Response(status=exc.status)       # 400 malformed, 401 stale or bad signature
    event = json.loads(request_body_bytes)       # parse only after verifying
    # dedupe on event["event_id"] (delivery is at-least-once)

During a secret rotation (PATCH with ``previous_secret_ttl``) pass both secrets; drop the old one once the TTL
has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SIGNATURE_HEADER = "X-ScaiVault-Signature"
TIMESTAMP_HEADER = "X-ScaiVault-Timestamp"
EVENT_ID_HEADER = "X-ScaiVault-Event-Id"
EVENT_TYPE_HEADER = "X-ScaiVault-Event-Type"
USER_AGENT = "ScaiVault-Webhook/1.0"
DEFAULT_TOLERANCE_SECONDS = 300


class VerificationError(Exception):
    """The delivery must be rejected. ``status`` is the HTTP status the documented sample answers with."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int | str, raw_body: bytes) -> str:
    """The ``X-ScaiVault-Signature`` value for ``raw_body`` sent at ``timestamp``."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode("ascii") + raw_body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for k, v in headers.items():
        if k.lower() == lower:
            return v
    return None


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Iterable[str | bytes], *,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """Return if the signature matches one of ``secrets`` and the timestamp is fresh; raise otherwise."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature or not signature.startswith("sha256="):
        raise VerificationError("missing or malformed signature headers", 400)
    try:
        ts = int(timestamp)
    except ValueError:
        raise VerificationError("timestamp is not an integer", 400) from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise VerificationError("timestamp outside the tolerance window", 401)
    for secret in secrets:
        if secret and hmac.compare_digest(sign(secret, timestamp, raw_body), signature):
            return
    raise VerificationError("signature mismatch", 401)
