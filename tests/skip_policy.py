"""Skip policy (issue 22 item 6): in CI a skipped test is a failure unless ``tests/skip_allowlist`` names it.

A missing emulator, moto or other dependency must not turn a suite green by skipping it. When the policy is on,
every skip (from a mark, ``pytest.skip``, ``importorskip``, a skipping fixture, or a module skipped at collection)
is recorded; at the end of the session any skip whose node id matches no allow-list pattern is listed and the
session exits with status 1 even if everything else passed.

On when ``CI`` is true (``.ci/run``) or ``SCAIVAULT_STRICT_SKIPS=1`` (``make test`` sets it); off otherwise, so a
developer running one file without, say, moto still gets an ordinary skip. ``SCAIVAULT_SKIP_ALLOWLIST`` points at
another allow-list file (used by the policy's own tests).

Allow-list format, one entry per line: ``<node-id glob> | <reason>``; ``#`` starts a comment. The glob is matched
with ``fnmatch`` against the full node id (``tests/x/test_y.py::test_z[param]``). The reason is required.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

DEFAULT_ALLOWLIST = Path(__file__).with_name("skip_allowlist")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Allowed:
    pattern: str
    reason: str


def strict() -> bool:
    return (os.environ.get("CI", "").strip().lower() in _TRUE
            or os.environ.get("SCAIVAULT_STRICT_SKIPS", "").strip().lower() in _TRUE)


def load_allowlist(path: Path) -> list[Allowed]:
    entries: list[Allowed] = []
    if not path.exists():
        return entries
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        pattern, sep, reason = (part.strip() for part in line.partition("|"))
        if not sep or not pattern or not reason:
            raise pytest.UsageError(f"{path}:{lineno}: expected '<node-id glob> | <reason>', got {raw!r}")
        entries.append(Allowed(pattern, reason))
    return entries


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    def __init__(self, allowlist: list[Allowed]) -> None:
        self.allowlist = allowlist
        self.skipped: list[tuple[str, str]] = []  # (node id, skip reason)

    def allowed(self, nodeid: str) -> Allowed | None:
        return next((a for a in self.allowlist if fnmatch.fnmatchcase(nodeid, a.pattern)), None)

    @property
    def unexpected(self) -> list[tuple[str, str]]:
        return [(n, r) for n, r in self.skipped if self.allowed(n) is None]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self.skipped.append((report.nodeid, _reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, _reason(report)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        unexpected = self.unexpected
        if not unexpected:
            return
        terminalreporter.section("skips not on tests/skip_allowlist (a skip fails the run in CI)", red=True)
        for nodeid, reason in unexpected:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
        terminalreporter.line("Install what is missing, or add '<node-id glob> | <reason>' to tests/skip_allowlist "
                              "if the skip is legitimate in CI (see docs/testing.md).")


def pytest_configure(config: pytest.Config) -> None:
    if not strict() or config.pluginmanager.has_plugin("scaivault-skip-policy"):
        return
    path = Path(os.environ.get("SCAIVAULT_SKIP_ALLOWLIST") or DEFAULT_ALLOWLIST)
    config.pluginmanager.register(SkipPolicy(load_allowlist(path)), "scaivault-skip-policy")
