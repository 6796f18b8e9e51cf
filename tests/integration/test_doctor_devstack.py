"""`scaivault doctor` passes on `make dev` (devstack.run): with the printed admin token and the dev stack's
settings, every check is ok or skipped and the exit code is 0."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.devstack_run import dev_stack

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_doctor_passes_on_make_dev(tmp_path):
    from devstack.run import app_env, load_or_create_secrets

    with dev_stack(tmp_path) as stack:
        state, info = stack.state, stack.info
        assert info.get("admin_token"), "the dev stack prints a usable admin token"
        # the operator runs doctor where the deployment's settings are: the dev stack's own environment
        doc_env = app_env(load_or_create_secrets(state), info["database_url"], info["redis_url"],
                          info["temporal_address"], info["scaikey_url"], info["api_url"])
        doc_env["SCAIVAULT_CONFIG"] = str(tmp_path / "no-config.json")
        deadline = time.time() + 120
        while True:  # the start-up identity sync may still be running: doctor accepts running, not failed
            out = subprocess.run([sys.executable, "-m", "cli", "doctor", "--url", info["api_url"], "--token",
                                  info["admin_token"], "--json"], capture_output=True, text=True, env=doc_env,
                                 cwd=REPO, timeout=120)
            report = json.loads(out.stdout)
            if out.returncode == 0 or time.time() > deadline:
                break
            time.sleep(2)
        assert out.returncode == 0 and report["healthy"], json.dumps(report, indent=1)[:4000]
        checks = {c["name"]: c for c in report["checks"]}
        for name in ("api", "token", "health", "migrations", "workflows", "clock"):
            assert checks[name]["status"] == "ok", checks[name]
