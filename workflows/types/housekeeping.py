"""Inputs and outputs of the housekeeping workflow (stdlib only: passes through the sandbox)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HousekeepingInput:
    steps: list[str] = field(default_factory=list)  # empty: every registered sweeper
    heartbeat_timeout_seconds: int = 30


@dataclass(frozen=True)
class StepInput:
    step: str


@dataclass(frozen=True)
class StepResult:
    step: str
    processed: int
    batches: int


@dataclass(frozen=True)
class HousekeepingResult:
    results: list[StepResult] = field(default_factory=list)
