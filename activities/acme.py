"""ACME activities on the pki task queue: work one order attempt, record a failed attempt (audit + maybe a fresh
order), place a renewal order; and the internal-CA kind: re-issue one certificate through its role, record a failed
attempt. Inputs and results are ids, dates and error codes only."""

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
from services.pki import common as pki_common
from services.pki import renewal as internal
from workflows.types.acme import (
    FailureInput,
    InternalFailureInput,
    InternalRenewInput,
    RenewalOrderInput,
    RunOrderInput,
    RunOrderResult,
)


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

    @activity.defn(name="pki.renew_internal")
    async def renew_internal(self, inp: InternalRenewInput) -> RunOrderResult:
        """Re-issue an internal-CA certificate (services/pki/renewal.py); classified failures are non-retryable
        ApplicationErrors (the workflow backs off), anything else (KMS, database) is retried by Temporal."""
        keyring = keyring_for(self.settings, self.db)
        try:
            async with self.db.raw() as conn, conn.transaction():
                row = await internal.renew(conn, keyring, self.audit, self.settings.base_url, inp.tenant_id,
                                           inp.from_certificate_id, _wf_id())
        except internal.RenewalFailure as exc:
            raise ApplicationError(exc.message, {"code": exc.code, "retry_after": None}, type=exc.code,
                                   non_retryable=True) from None
        except AppError as exc:
            if exc.retryable or exc.code in ("kms_unavailable", "service_unavailable"):
                raise
            raise ApplicationError(exc.message, {"code": exc.code, "retry_after": None}, type=exc.code,
                                   non_retryable=True) from None
        return RunOrderResult(certificate_id=row["id"], not_before=str(pki_common.iso(row["not_before"])),
                              not_after=str(pki_common.iso(row["not_after"])), renewed=True, auto_renew=True,
                              renew_before_seconds=None)

    @activity.defn(name="pki.renew_internal_failed")
    async def renew_internal_failed(self, inp: InternalFailureInput) -> None:
        async with self.db.raw() as conn, conn.transaction():
            await internal.record_failure(conn, self.audit, inp.tenant_id, inp.managed_id, inp.from_certificate_id,
                                          inp.code, inp.message, inp.attempt, inp.final, _wf_id())
