"""Executions started before ``load_plan``/``mark`` became local activities still replay on today's workflow code.

``history_before_local_steps.json`` was recorded from the previous ``SecretRotation`` code (regular activities
for every step) on a Temporal dev server with stub activities: start, plan, ``due`` mark, rotate, next plan,
timer. Replaying it must take the old branch (``workflow.patched`` is False for a history without the marker);
taking the new branch on it is a non-determinism error, which is what the patch prevents.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.rotation import LOCAL_STEPS_PATCH, SecretRotationWorkflow

pytestmark = pytest.mark.asyncio
HISTORY = Path(__file__).with_name("history_before_local_steps.json")


def _history() -> WorkflowHistory:
    return WorkflowHistory.from_json("rotation/tnt_x/1", HISTORY.read_text())


async def test_a_history_from_before_the_local_steps_replays() -> None:
    names = [e.activity_task_scheduled_event_attributes.activity_type.name for e in _history().events
             if e.HasField("activity_task_scheduled_event_attributes")]
    assert names == ["rotation_scheduler.load_plan", "rotation_scheduler.mark", "rotation_scheduler.rotate",
                     "rotation_scheduler.load_plan"]  # the old path: every step a regular activity
    result = await Replayer(workflows=[SecretRotationWorkflow]).replay_workflow(_history())
    assert result.replay_failure is None


async def test_without_the_patch_the_old_history_would_not_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    real = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda pid: True if pid == LOCAL_STEPS_PATCH else real(pid))
    with pytest.raises(Exception, match=r"(?i)nondetermin"):
        await Replayer(workflows=[SecretRotationWorkflow]).replay_workflow(_history())
