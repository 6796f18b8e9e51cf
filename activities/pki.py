"""PKI activities: emit certificate.expiring notices (exactly once per threshold) and rebuild CRLs before their
nextUpdate. Both are idempotent sweeps; each batch commits on its own."""

from __future__ import annotations

from temporalio import activity

from core.settings import Settings
from db.engine import Database
from services.keys import keyring_for
from services.pki import maintenance
from workflows.types.pki import StepResult


class PkiActivities:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    @activity.defn(name="pki.emit_expiring")
    async def emit_expiring(self) -> StepResult:
        total = 0
        while True:
            async with self.db.raw() as conn:
                n = await maintenance.emit_expiring(conn)
            total += n
            activity.heartbeat(total)
            if n == 0:
                return StepResult(processed=total)

    @activity.defn(name="pki.rebuild_crls")
    async def rebuild_crls(self) -> StepResult:
        keyring = keyring_for(self.settings, self.db)
        total = 0
        while True:
            async with self.db.raw() as conn:
                n = await maintenance.rebuild_due_crls(conn, keyring, self.settings.base_url)
            total += n
            activity.heartbeat(total)
            if n == 0:
                return StepResult(processed=total)
