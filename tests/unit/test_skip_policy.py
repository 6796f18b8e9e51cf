"""The skip policy (tests/skip_policy.py): under CI an unexpected skip fails the session; allowed ones do not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.skip_policy import load_allowlist

REPO = Path(__file__).resolve().parents[2]
# a bare pytest (plugins this check does not need cost ~1.5 s per start) with the policy loaded as a plugin
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:schemathesis",
          "-p", "no:hypothesispytest", "-p", "no:anyio", "-p", "tests.skip_policy"]

SAMPLE = '''
import pytest

def test_passes():
    pass

@pytest.mark.skip(reason="no emulator")
def test_marked():
    pass

def test_runtime_skip():
    pytest.skip("moto_server not installed")

@pytest.fixture
def needs_thing():
    pytest.skip("thing missing")

def test_fixture_skip(needs_thing):
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail_is_not_a_skip():
    assert False
'''


def _run(tmp_path: Path, allowlist: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "allow").write_text(allowlist)
    full_env = {k: v for k, v in os.environ.items() if k not in ("CI", "SCAIVAULT_STRICT_SKIPS")}
    full_env.update({"PYTHONPATH": str(REPO), "SCAIVAULT_SKIP_ALLOWLIST": str(tmp_path / "allow"), **env})
    return subprocess.run(
        [*PYTEST, "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120,
    )


def test_off_outside_ci(tmp_path):
    r = _run(tmp_path, "")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 skipped" in r.stdout


def test_unexpected_skips_fail_the_session_in_ci(tmp_path):
    r = _run(tmp_path, "", CI="true")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "skips not on tests/skip_allowlist" in r.stdout
    for name, reason in (("test_marked", "no emulator"), ("test_runtime_skip", "moto_server not installed"),
                         ("test_fixture_skip", "thing missing")):
        assert f"test_sample.py::{name}: {reason}" in r.stdout, r.stdout
    assert "test_xfail_is_not_a_skip" not in r.stdout.split("skips not on")[1]


def test_allowlisted_skips_pass(tmp_path):
    allow = ("# comment\n*::test_marked | needs an emulator CI has not\n"
             "*test_sample.py::test_*_skip | sample reasons\n")
    r = _run(tmp_path, allow, CI="true")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skips not on" not in r.stdout


def test_partly_allowlisted_still_fails_and_names_only_the_rest(tmp_path):
    r = _run(tmp_path, "*::test_marked | reason\n", SCAIVAULT_STRICT_SKIPS="yes")
    assert r.returncode == 1
    summary = r.stdout.split("skips not on")[1]
    assert "test_runtime_skip" in summary and "test_fixture_skip" in summary and "test_marked" not in summary


def test_a_failing_run_keeps_its_status(tmp_path):
    (tmp_path / "test_sample.py").write_text("def test_x():\n    assert False\n")
    env = {k: v for k, v in os.environ.items() if k != "SCAIVAULT_STRICT_SKIPS"}
    env.update({"PYTHONPATH": str(REPO), "CI": "true"})
    r = subprocess.run([*PYTEST, "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1


@pytest.mark.parametrize("line", ["tests/x.py::t", "| reason only", "tests/x.py::t |"])
def test_entries_without_a_reason_are_rejected(tmp_path, line):
    path = tmp_path / "allow"
    path.write_text(line + "\n")
    with pytest.raises(pytest.UsageError):
        load_allowlist(path)


def test_the_repository_allowlist_parses_and_every_entry_has_a_reason():
    for entry in load_allowlist(REPO / "tests" / "skip_allowlist"):
        assert entry.reason and entry.pattern
