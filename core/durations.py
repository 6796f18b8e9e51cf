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
        return timedelta(seconds=value)
    m = _RE.fullmatch(str(value))
    if not m:
        raise AppError(
            "invalid_duration",
            f"{field} {value!r} is not a duration like 90d, 48h, 15m or 30s",
            {"field": field, "value": str(value)},
        )
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])
