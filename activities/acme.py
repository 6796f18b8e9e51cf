"""ACME activities on the pki task queue: work one order attempt, record a failed attempt (audit + maybe a fresh
order), place a renewal order. Inputs and results are ids, dates and error codes only."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from audit.recorder import recorder_for
from core.errors import AppError
from core.settings import Settings
from db.engine import Database
from services.acme import client
from services.acme.orders import CLASSIFIED, Worker, classify
from services.keys import keyring_for
from workflows.types.acme import FailureInput, RenewalOrderInput, RunOrderInput, RunOrderResult


def _wf_id() -> str | None:
    try:
        return activity.info().workflow_id
    except RuntimeError:
        return None


class AcmeActivities:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.audit = recorder_for(settings, db)

    def _worker(self) -> Worker:
        return Worker(self.settings, self.db, keyring_for(self.settings, self.db), self.audit,
                      beat=lambda: activity.heartbeat())

    @activity.defn(name="acme.run_order")
    async def run_order(self, inp: RunOrderInput) -> RunOrderResult:
        try:
            out = await self._worker().run(inp.tenant_id, inp.order_id, _wf_id())
        except (client.AcmeFailure, AppError) as exc:
            code, message, retry_after = classify(exc)
            if code not in CLASSIFIED:
                raise  # transient (kms_unavailable, service_unavailable, ...): Temporal retries the activity
            raise ApplicationError(message, {"code": code, "retry_after": retry_after}, type=code,
                                   non_retryable=True) from None
        return RunOrderResult(**out)

    @activity.defn(name="acme.record_failure")
    async def record_failure(self, inp: FailureInput) -> str | None:
        return await self._worker().record_failure(inp.tenant_id, inp.order_id, inp.code, inp.message, inp.attempt,
                                                   inp.abandon, _wf_id())

    @activity.defn(name="acme.renewal_order")
    async def renewal_order(self, inp: RenewalOrderInput) -> str:
        return await self._worker().renewal_order(inp.tenant_id, inp.managed_id, inp.from_certificate_id,
                                                  inp.previous_order_id)
