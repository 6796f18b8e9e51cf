"""PKI maintenance: a short workflow fired by the ``pki-maintenance`` Schedule on the ``pki`` task queue. It emits
``certificate.expiring`` at the thresholds (exactly once: services/pki/maintenance.py) and rebuilds CRLs before
their ``nextUpdate``. Each step is an idempotent, heartbeating activity with retries."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.pki import PkiActivities
    from workflows.types.pki import MAINTENANCE_WORKFLOW, MaintenanceInput, MaintenanceResult

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                     maximum_attempts=10)


@workflow.defn(name=MAINTENANCE_WORKFLOW)
class PkiMaintenanceWorkflow:
    @workflow.run
    async def run(self, inp: MaintenanceInput) -> MaintenanceResult:
        heartbeat = timedelta(seconds=inp.heartbeat_timeout_seconds)
        expiring = await workflow.execute_activity_method(
            PkiActivities.emit_expiring, start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=heartbeat,
            retry_policy=_RETRY)
        crls = await workflow.execute_activity_method(
            PkiActivities.rebuild_crls, start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=heartbeat,
            retry_policy=_RETRY)
        return MaintenanceResult(expiring_emitted=expiring.processed, crls_rebuilt=crls.processed)
