"""audit/entry.py ACTIONS documents every audit action the code records: each literal action a route declares
(``ctx.describe("...")``) or records (``action="..."``) must be listed (SPEC_ACTIONS or EXTRA_ACTIONS)."""

from __future__ import annotations

import re
from pathlib import Path

from audit.entry import ACTIONS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "services", "audit", "activities", "workflows", "auth", "worker", "ratelimit", "policy")
_ACTION = re.compile(r'(?:\bctx\.describe\(\s*|\.record\([^()]*?\baction=)"([a-z_]+)"', re.DOTALL)


def test_every_recorded_action_is_documented() -> None:
    used: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for m in _ACTION.finditer(path.read_text()):
                used.setdefault(m.group(1), set()).add(str(path.relative_to(ROOT)))
    assert "health_detailed" in used and "read" in used  # the scan sees routes and services
    missing = {action: sorted(paths) for action, paths in used.items() if action not in ACTIONS}
    assert missing == {}
