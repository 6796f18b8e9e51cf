"""Shared pieces of the dynamic-credential services: errors, timestamps, names, TTLs, secret scrubbing."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.durations import parse_duration
from core.errors import AppError

NAME_MAX = 64
SYSTEM_REVOKER = "lease-revoker"     # audit/event identity of background revocations: system:lease-revoker
SYSTEM_ENGINES = "dynamic-engines"   # reads root credentials: system:dynamic-engines
MAX_TTL_CEILING = timedelta(days=365)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_USER_ALPHABET = string.ascii_lowercase + string.digits
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def validation(field: str, message: str, **details: object) -> AppError:
    return AppError("validation_error", message, {"fields": [{"field": field, "message": message}], **details})


def invalid_config(message: str, **details: object) -> AppError:
    return AppError("invalid_config", message, dict(details))


def engine_not_found(name: object) -> AppError:
    return AppError("engine_not_found", f"dynamic engine '{name}' not found", {"name": str(name)})


def role_not_found(name: object, engine: object) -> AppError:
    return AppError("role_not_found", f"role '{name}' not found on engine '{engine}'",
                    {"name": str(name), "engine": str(engine)})


def lease_not_found(lease_id: object) -> AppError:
    return AppError("lease_not_found", f"lease '{lease_id}' not found", {"lease_id": str(lease_id)})


def check_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise validation(field, f"{field} must be 1-{NAME_MAX} characters of letters, digits, '-', '_' or '.'"
                                " starting with a letter or digit")
    return value


def ttl(value: Any, field: str, *, ceiling: timedelta = MAX_TTL_CEILING) -> tuple[str, int]:
    """(text, seconds) of a TTL field: a duration string or integer seconds, 1s..ceiling."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise validation(field, f"{field} must be a duration like 1h, 15m or 30s")
    seconds = int(parse_duration(value, field=field).total_seconds())
    if not 1 <= seconds <= ceiling.total_seconds():
        raise validation(field, f"{field} must be between 1s and {int(ceiling.total_seconds())}s",
                         max_seconds=int(ceiling.total_seconds()))
    return (value if isinstance(value, str) else f"{value}s"), seconds


def generate_username(role: str, *, max_len: int = 63) -> str:
    """``v-<role>-<random>``: letters, digits and '-' only, so it is safe inside a quoted identifier."""
    slug = re.sub(r"[^a-z0-9]", "", role.lower())[:16] or "role"
    rand = "".join(secrets.choice(_USER_ALPHABET) for _ in range(20))
    return f"v-{slug}-{rand}"[:max_len]


def generate_password(length: int = 32) -> str:
    while True:  # at least one of each class: targets with password rules accept it
        pw = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))
        if any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw):
            return pw


def scrub(message: str, secrets_: Iterable[str | None]) -> str:
    """An error text fit for storage and logs: any secret it quotes is replaced, length-capped."""
    for s in secrets_:
        if s and len(s) >= 4:
            message = message.replace(s, "***")
    return message[:500]


def describe_error(exc: BaseException, secrets_: Iterable[str | None] = ()) -> str:
    text = str(exc).strip() or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}", secrets_)
