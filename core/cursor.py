"""Opaque list cursors. A bad cursor is ``400 invalid_cursor``, never a 5xx.

Two kinds: an id cursor (the last id of a page, e.g. ``pol_…``) and a sequence cursor (``{"id": <seq>}``, the
audit log's insertion order). Both are base64url (padding optional). What a cursor decodes to is checked in full
before it reaches SQL: an id is ``prefix`` + ``[A-Za-z0-9_-]`` (at most 128 characters, so no NUL, control
character or non-ASCII byte PostgreSQL would refuse); a sequence is an integer in ``1 .. 2**63-1`` (bigint).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

import orjson

from core.errors import AppError

INT8_MAX: Final = 2**63 - 1
_ID_RE: Final = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def _invalid() -> AppError:
    return AppError("invalid_cursor", "cursor is malformed or expired")


def _b64decode(value: str) -> bytes:
    """Strict base64url (padding optional); ValueError on anything else."""
    if not value.isascii():
        raise ValueError("not base64url")
    raw = value.rstrip("=")
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def encode_id_cursor(last_id: str | None) -> str | None:
    return base64.urlsafe_b64encode(last_id.encode()).decode() if last_id else None


def decode_id_cursor(value: str | None, prefix: str) -> str | None:
    """The id inside ``value``; it must start with ``prefix`` (e.g. ``pol_``)."""
    if not value:
        return None
    try:
        out = _b64decode(value).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise _invalid() from None
    if not out.startswith(prefix) or _ID_RE.fullmatch(out) is None:
        raise _invalid()
    return out


def encode_seq_cursor(seq: int | None) -> str | None:
    return None if seq is None else base64.urlsafe_b64encode(orjson.dumps({"id": seq})).decode().rstrip("=")


def decode_seq_cursor(value: str | None) -> int | None:
    """The sequence number inside ``value``: a JSON integer (not a bool or float) in 1 .. 2**63-1."""
    if not value:
        return None
    try:
        doc: Any = orjson.loads(_b64decode(value))
    except (ValueError, orjson.JSONDecodeError):
        raise _invalid() from None
    seq = doc.get("id") if isinstance(doc, dict) else None
    if type(seq) is not int or not 1 <= seq <= INT8_MAX:
        raise _invalid()
    return seq
