"""Federation activities: one sync run of a backend (services/federation/sync.py), heartbeating the last local
path done after every page; a retried attempt (worker killed) resumes after the path in its heartbeat details.

Idempotent: a path whose local value already equals the remote value only moves the ledger, so a page replayed
after a crash writes no second version.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity

from core.errors import AppError, to_application_error
from core.settings import Settings
from db.engine import Database
from services.federation.sync import run_sync
from workflows.types.federation import SyncInput, SyncResult


def worker_state(settings: Settings, db: Database, redis: Any) -> Any:
    """The components the secrets write path needs in the worker (as the rotation worker builds them)."""
    from services.rotation.rotate import worker_state as base

    return base(settings, db, redis)


class FederationActivities:
    def __init__(self, settings: Settings, db: Database, redis: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.state = worker_state(settings, db, redis)

    @activity.defn(name="federation_sync.run")
    async def run_sync(self, inp: SyncInput) -> SyncResult:
        info = activity.info()
        details = info.heartbeat_details
        resume = str(details[0]) if details and details[0] else None

        def beat(last: str | None) -> None:
            activity.heartbeat(last)

        pause_s = self.settings.federation_crash_test_page_pause_seconds

        async def pause() -> None:
            await asyncio.sleep(pause_s)

        beat(resume)
        try:
            out = await run_sync(self.state, inp.tenant_id, inp.backend_id, resume_after=resume, heartbeat=beat,
                                 workflow_id=info.workflow_id, pause=pause if pause_s > 0 else None)
        except AppError as exc:
            raise to_application_error(exc) from None
        return SyncResult(status=out["status"], interval_seconds=int(out.get("interval_seconds", 0)),
                          error=out.get("error"), retry_after_seconds=int(out.get("retry_after_seconds", 0)),
                          counts=dict(out.get("counts", {})))
