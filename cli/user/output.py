"""Output for people (aligned tables, a progress bar on stderr) and for scripts (``--json``), and the exit
codes of core.md §8.3: 0 ok, 1 general, 2 auth (401), 3 authz (403), 4 not found (404), 5 validation (400/422)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

OK, GENERAL, AUTH, AUTHZ, NOT_FOUND, VALIDATION = 0, 1, 2, 3, 4, 5


class UsageError(Exception):
    """Bad input caught before any request (exit 5)."""


def exit_code(exc: BaseException) -> int:
    from scaivault_sdk import (
        AccessDeniedError,
        AuthenticationError,
        NotFoundError,
        ValidationError,
    )

    if isinstance(exc, AuthenticationError):
        return AUTH
    if isinstance(exc, AccessDeniedError):
        return AUTHZ
    if isinstance(exc, NotFoundError):
        return NOT_FOUND
    if isinstance(exc, ValidationError | UsageError):
        return VALIDATION
    return GENERAL


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(type(value).__name__)


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, default=_default, sort_keys=False), file=out or sys.stdout)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, default=_default)
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)


def print_fields(pairs: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        print(f"{k.ljust(width)}  {cell(v)}", file=out)


class Progress:
    """A one-line progress bar on stderr; silent unless enabled (default: stderr is a terminal)."""

    def __init__(self, label: str, total: int | None, enabled: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        self.done = done
        if not self.enabled:
            return
        if self.total:
            filled = int(30 * min(done, self.total) / self.total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total}")
        else:
            sys.stderr.write(f"\r{self.label} {done}")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
