"""Opaque list cursors: the last id of a page, base64url-encoded. A bad cursor is ``400 invalid_cursor``."""

from __future__ import annotations

import base64
import binascii

from core.errors import AppError


def encode_id_cursor(last_id: str | None) -> str | None:
    return base64.urlsafe_b64encode(last_id.encode()).decode() if last_id else None


def decode_id_cursor(value: str | None, prefix: str) -> str | None:
    """The id inside ``value``; it must start with ``prefix`` (e.g. ``pol_``)."""
    if not value:
        return None
    try:
        out = base64.urlsafe_b64decode(value.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AppError("invalid_cursor", "cursor is malformed or expired") from None
    if not out.startswith(prefix):
        raise AppError("invalid_cursor", "cursor is malformed or expired")
    return out
