"""``last_accessed_at`` without a write on the read path.

Reads call :meth:`AccessTracker.touch` (a dict assignment). A background task flushes the accumulated
``{secret_id: last read time}`` every ``interval`` seconds in one batched UPDATE. A crash loses at most one
interval of access times, which is acceptable for an informational field (the audit log is authoritative).
"""

from __future__ import annotations

import asyncio
import logging
import time

from core.background import cancel_and_wait
from db.engine import Database
from repositories import secrets as repo

log = logging.getLogger("scaivault.secrets")


class AccessTracker:
    def __init__(self, db: Database, interval: float = 5.0) -> None:
        self.db = db
        self.interval = interval
        self._pending: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, secret_id: int) -> None:
        self._pending[secret_id] = time.time()

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        ids = list(batch)
        try:
            async with self.db.raw() as conn:
                await repo.touch_accessed(conn, ids, [batch[i] for i in ids])
        except Exception:
            log.warning("could not record last_accessed_at; will retry", exc_info=True)
            for sid, t in batch.items():  # keep the newest time per secret for the next attempt
                if self._pending.get(sid, 0.0) < t:
                    self._pending[sid] = t
            return 0
        return len(ids)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="secret-access-tracker")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush()
