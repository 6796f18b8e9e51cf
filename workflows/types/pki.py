"""Inputs and outputs of the PKI maintenance workflow (stdlib only: passes through the sandbox)."""

from dataclasses import dataclass

MAINTENANCE_WORKFLOW = "PkiMaintenance"


@dataclass(frozen=True)
class MaintenanceInput:
    heartbeat_timeout_seconds: int = 60


@dataclass(frozen=True)
class StepResult:
    processed: int


@dataclass(frozen=True)
class MaintenanceResult:
    expiring_emitted: int
    crls_rebuilt: int


MAINTENANCE_INTERVAL_SECONDS = 3600  # CRLs live 72 h and are rebuilt 24 h ahead; thresholds are whole days
