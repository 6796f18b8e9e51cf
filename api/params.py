"""Query-parameter types every router shares, so hostile values get a 422 ``validation_error`` naming the field
instead of reaching SQL, the audit log or a response stream.

* ``Text``: a string without control characters (C0, DEL, C1, U+2028/U+2029), NUL or U+FFFD (what invalid UTF-8
  in a percent-escape decodes to), at most ``MAX_TEXT`` characters. PostgreSQL cannot store NUL in text, so such a
  value could only ever fail later with a 5xx;
* ``UtcDatetime``: an ISO-8601 datetime normalised to UTC (naive = UTC); one whose UTC form falls outside the
  datetime range (``0001-01-01T00:00:00+00:01``) is refused rather than overflowing in the handler.

Use them as ``Annotated[Text | None, Query(...)]``. ``text_problem`` is the same rule for values parsed by hand.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator

MAX_TEXT: Final = 1024
_BAD_TEXT: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` is not acceptable text, or None."""
    if len(value) > MAX_TEXT:
        return f"must be at most {MAX_TEXT} characters"
    if _BAD_TEXT.search(value) is not None:
        return "must not contain control characters, NUL or invalid UTF-8"
    return None


def _text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC); ValueError when that falls outside the datetime range."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the supported range once converted to UTC") from None


Text = Annotated[str, AfterValidator(_text)]
UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]
