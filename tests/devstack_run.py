"""Run ``make dev`` (``python -m devstack.run``) from a test: free ports, a private state directory, wait until
stack.json says the stack is up, and stop it by its own pid (SIGTERM, which stops every child it started)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack import services as svc

REPO = Path(__file__).resolve().parents[1]


def admin_ready(info: dict[str, Any]) -> bool:
    return bool(info.get("running") and info.get("admin_token"))


@dataclass
class DevStack:
    proc: subprocess.Popen[str]
    state: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def stack_file(self) -> Path:
        return self.state / "stack.json"


@contextmanager
def dev_stack(tmp_path: Path, *, ready: Callable[[dict[str, Any]], bool] = admin_ready,
              timeout: float = 180.0) -> Iterator[DevStack]:
    """The stack as ``make dev`` starts it (one API worker), up once ``ready(stack.json)`` holds."""
    state = tmp_path / "dev"
    env = dict(os.environ, SCAIVAULT_DEV_STATE_DIR=str(state), SCAIVAULT_DEV_API_WORKERS="1")
    for name in ("API", "TEMPORAL", "TEMPORAL_UI", "PG", "REDIS", "SCAIKEY"):
        env[f"SCAIVAULT_DEV_{name}_PORT"] = str(svc.free_port())
    proc = subprocess.Popen([sys.executable, "-m", "devstack.run"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stack = DevStack(proc=proc, state=state)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"devstack exited early:\n{proc.stdout.read() if proc.stdout else ''}")
            if stack.stack_file.exists():  # written atomically by devstack.run
                stack.info = json.loads(stack.stack_file.read_text())
                if ready(stack.info):
                    break
            time.sleep(0.5)
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                raise
