"""HMAC hashing of sensitive request fields, in the spirit of Vault's audit hashing.

Keys stay readable; every leaf value (string, number, boolean) becomes ``"hmac-sha256:<hex>"`` keyed with
AUDIT_HMAC_KEY, so an auditor holding a candidate value can confirm a match (recompute the HMAC) without the
log revealing it. ``None`` stays ``None``; lists are hashed element by element.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

PREFIX = "hmac-sha256:"

# Keys whose values are hashed wherever they appear in ``extra`` (defence in depth: callers must not pass
# secret values at all, but a field named like this is never stored in clear).
SENSITIVE_KEYS = frozenset({
    "value", "values", "data", "secret", "secrets", "password", "passphrase", "token", "access_token",
    "refresh_token", "private_key", "client_secret", "credentials", "api_key", "key_material", "plaintext",
})
# Everything under this key in ``extra`` is hashed leaf by leaf (the explicit way to pass request fields).
HASHED_KEY = "hashed"


def _leaf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def hash_value(key: bytes, value: Any) -> str:
    """``hmac-sha256:<hex>`` of one leaf value (booleans as true/false, numbers as their decimal text)."""
    digest = hmac.new(key, _leaf_text(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest


def hash_leaves(key: bytes, data: Any) -> Any:
    """Hash every leaf of a dict/list structure; keys are kept readable."""
    if isinstance(data, dict):
        return {str(k): hash_leaves(key, v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [hash_leaves(key, v) for v in data]
    if data is None:
        return None
    return hash_value(key, data)


def sanitize_extra(key: bytes, extra: dict[str, Any] | None) -> dict[str, Any]:
    """What goes into ``extra_data``: ``extra["hashed"]`` and any sensitive-named field hashed, rest kept."""
    if not extra:
        return {}
    return _sanitize(key, extra)


def _sanitize(key: bytes, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        name = str(k)
        if name == HASHED_KEY or name.lower() in SENSITIVE_KEYS:
            out[name] = hash_leaves(key, v)
        elif isinstance(v, dict):
            out[name] = _sanitize(key, v)
        else:
            out[name] = v
    return out
