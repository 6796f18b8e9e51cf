"""Duration strings as used across the API: ``90d``, ``48h``, ``15m``, ``30s``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

from core.errors import AppError

_RE = re.compile(r"\s*([0-9]{1,9})\s*([smhdw])\s*", re.ASCII)  # fullmatch: no `$` before a newline
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int, *, field: str = "duration") -> timedelta:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise AppError("invalid_duration", f"{field} must not be negative", {"field": field})
        return _bounded(value, field)
    m = _RE.fullmatch(str(value))
    if not m:
        raise AppError(
            "invalid_duration",
            f"{field} {value!r} is not a duration like 90d, 48h, 15m or 30s",
            {"field": field, "value": str(value)},
        )
    return _bounded(int(m.group(1)) * _UNIT[m.group(2)], field)


#: Longest accepted duration (1000 years): ``now + duration`` always fits a datetime (year 9999), so no caller can
#: be made to overflow (``999999999w`` is past even what a timedelta holds); callers apply their own, lower caps.
MAX_SECONDS = 1000 * 365 * 86400


def _bounded(seconds: int, field: str) -> timedelta:
    if seconds > MAX_SECONDS:
        raise AppError("invalid_duration", f"{field} must be at most 1000 years", {"field": field})
    return timedelta(seconds=seconds)
