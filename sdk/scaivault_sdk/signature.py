"""``verify_webhook``: check a webhook delivery's signature before trusting its body (lifecycle.md §5.4).

The same scheme as the server's reference receiver (``clients/webhook_verify.py``), restated here so the SDK
imports nothing from the server::

    X-ScaiVault-Timestamp: <unix seconds>
    X-ScaiVault-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + raw_body)>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from scaivault_sdk.errors import ScaiVaultError

SIGNATURE_HEADER = "X-ScaiVault-Signature"
TIMESTAMP_HEADER = "X-ScaiVault-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ScaiVaultError):
    """Reject the delivery; ``status`` is what to answer (400 malformed, 401 stale or bad signature)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def sign(secret: str | bytes, timestamp: int | str, raw_body: bytes) -> str:
    """The ``X-ScaiVault-Signature`` value for ``raw_body`` sent at ``timestamp``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode("ascii") + raw_body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    for k, v in headers.items():
        if k.lower() == lower:
            return v
    return None


def verify_webhook(raw_body: bytes, headers: Mapping[str, str], secret: str | bytes | Iterable[str | bytes], *,
                   tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> dict[str, Any]:
    """Verify and return the parsed event; raise ``WebhookVerificationError`` otherwise.

    ``secret`` may be a list (current and previous secret while a rotation's grace period runs). Pass the raw
    request bytes, not re-serialized JSON. Deliveries are at-least-once: de-duplicate on ``event["event_id"]``.
    """
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature or not signature.startswith("sha256="):
        raise WebhookVerificationError("missing or malformed signature headers", 400)
    try:
        ts = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("timestamp is not an integer", 400) from None
    if abs((time.time() if now is None else now) - ts) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance window", 401)
    if not any(s and hmac.compare_digest(sign(s, timestamp, raw_body), signature) for s in secrets):
        raise WebhookVerificationError("signature mismatch", 401)
    try:
        event = json.loads(raw_body)
    except ValueError:
        raise WebhookVerificationError("body is not JSON", 400) from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("body is not a JSON object", 400)
    return event
