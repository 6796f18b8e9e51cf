"""One sync run of a sync-mode backend (lifecycle.md §6.5), called by the ``federation_sync.run`` activity.

1. List the remote keys under every mapping (cheap; repeated on a resumed attempt), sorted by local path.
2. Page through them (``FEDERATION_SYNC_PAGE_SIZE`` keys per batch of version look-ups), heartbeating the last
   local path done after every key, so a retried attempt (worker killed) resumes after it instead of starting over.
3. Per key: ask the remote version (Vault: KV v2 metadata ``current_version``; ASM: the ``AWSCURRENT`` version id
   from the listing). Unchanged against the ledger (``federation_items``) -> nothing. Changed -> fetch the value and
   - local value equal -> only the ledger moves (this is also what makes a resumed attempt write nothing twice:
     a version written before the kill already holds the remote value);
   - local secret written since the last sync (its version is not the one the ledger recorded, or it predates
     federation) with a different value -> a conflict is recorded, the local value is never overwritten;
   - otherwise a new local version through the secrets write path as ``system:federation-sync`` (audit action
     ``federation_sync``, normal ``secret.created`` / ``secret.updated`` events).
4. Keys gone remotely: the local copy is soft-deleted (recoverable for SOFT_DELETE_RETENTION) unless it was
   written locally since the last sync.
Remote failures end the run with ``failed`` (``status`` shows it; local copies stay readable) and a back-off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from audit.recorder import system_context
from auth.tenancy import UNASSIGNED_PARTNER
from core.errors import AppError
from core.ids import new_id
from repositories import federation as repo
from repositories import secrets as secrets_repo
from repositories.events import outbox
from repositories.secrets import Owner
from services.federation import backends as bk
from services.federation.remote import RemoteError
from services.secrets import input as inp
from services.secrets.service import WRITE_AUDIT_ACTION

log = logging.getLogger("scaivault.federation")

SYSTEM_JOB = "federation-sync"


def _ctx(row: Any, workflow_id: str | None) -> Any:
    ctx = system_context(SYSTEM_JOB, row["tenant_id"], partner_id=row["partner_id"], workflow_id=workflow_id,
                         action="federation_sync")
    ctx.internal[WRITE_AUDIT_ACTION] = "federation_sync"
    ctx.extra["backend_id"] = row["id"]
    return ctx


async def _local(state: Any, owner: Owner, path: str) -> tuple[Any, dict[str, Any] | None]:
    """(row, value) of the live current version; (row, None) for a deleted one; (None, None) when absent."""
    async with state.db.raw() as conn:
        row = await conn.fetchrow(secrets_repo.READ_ONE, "tenant", owner.owner_id, path, None)
    if row is None or row["deleted_at"] is not None or row["version"] is None or row["destroyed_at"] is not None:
        return row, None
    plaintext = await state.components["secrets"]._open(owner, path, row["version"], row["ciphertext"])
    return row, orjson.loads(plaintext)


class Run:
    def __init__(self, state: Any, row: Any, remote: Any, ctx: Any) -> None:
        self.state, self.row, self.remote, self.ctx = state, row, remote, ctx
        self.owner = Owner("tenant", row["tenant_id"], row["partner_id"] or UNASSIGNED_PARTNER)
        self.counts = {"listed": 0, "unchanged": 0, "created": 0, "updated": 0, "deleted": 0, "conflicts": 0,
                       "skipped": 0}

    async def one(self, path: str, key: str, items: dict[str, Any], conflicts: dict[str, Any]) -> None:
        backend_id = self.row["id"]
        item = items.get(path)
        try:
            data, rv = await self.remote.read(key)
        except RemoteError as exc:
            if exc.kind == "not_found":  # deleted between listing and reading: the next run sees it gone
                self.counts["skipped"] += 1
                return
            raise
        local_row, local = await _local(self.state, self.owner, path)
        async with self.state.db.raw() as conn:
            if path in conflicts:
                await repo.upsert_conflict(conn, id=new_id("fcf"), tenant_id=self.row["tenant_id"],
                                           backend_id=backend_id, path=path, backend_path=key,
                                           local_version=local_row["current_version"] if local_row else None,
                                           remote_version_id=rv)
                self.counts["conflicts"] += 1
                return
            if local is not None and local == data:
                await repo.put_item(conn, backend_id, path, key, rv, local_row["current_version"])
                self.counts["unchanged"] += 1
                return
            if local is not None and (item is None or item["local_version"] != local_row["current_version"]):
                async with conn.transaction():
                    new = await repo.upsert_conflict(
                        conn, id=new_id("fcf"), tenant_id=self.row["tenant_id"], backend_id=backend_id, path=path,
                        backend_path=key, local_version=local_row["current_version"], remote_version_id=rv)
                    if new:
                        await outbox.emit(conn, event_type="federation.conflict.detected", path=path,
                                          tenant_id=self.row["tenant_id"], partner_id=self.row["partner_id"],
                                          identity_id=self.ctx.principal.identity_id, request_id=self.ctx.request_id,
                                          data={"backend_id": backend_id, "backend_path": key,
                                                "local_version": local_row["current_version"],
                                                "remote_version_id": rv})
                self.counts["conflicts"] += 1
                return
        try:
            _, body = await self.state.components["secrets"].write(self.ctx, self.owner, path, {"data": data})
        except AppError as exc:  # e.g. a locally deleted, still recoverable secret (secret_exists): left alone
            log.warning("federation sync skipped a path", extra={"backend_id": backend_id, "code": exc.code})
            self.counts["skipped"] += 1
            return
        version = orjson.loads(body)["version"]
        async with self.state.db.raw() as conn:
            await repo.put_item(conn, backend_id, path, key, rv, version)
        self.counts["created" if local_row is None or local is None else "updated"] += 1

    async def deletions(self, listed: set[str], items: dict[str, Any], mappings: list[Any]) -> None:
        for path, item in items.items():
            if item["remote_deleted"] or path in listed or not any(m.matches(path) for m in mappings):
                continue
            local_row, _ = await _local(self.state, self.owner, path)
            if local_row is not None and local_row["deleted_at"] is None \
                    and local_row["current_version"] == item["local_version"]:
                try:
                    await self.state.components["secrets"].delete(self.ctx, self.owner, path, False)
                    self.counts["deleted"] += 1
                except AppError:
                    pass
            async with self.state.db.raw() as conn:
                await repo.put_item(conn, self.row["id"], path, item["remote_path"], None, item["local_version"],
                                    remote_deleted=True)


async def run_sync(state: Any, tenant_id: str, backend_id: str, *, resume_after: str | None,
                   heartbeat: Callable[[str | None], None], workflow_id: str | None = None,
                   pause: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    settings = state.settings
    async with state.db.raw() as conn:
        row = await repo.get(conn, tenant_id, backend_id)
    if row is None or row["mode"] != "sync":
        return {"status": "gone"}
    interval = int(row["sync_interval_seconds"] or 900)
    t0 = time.monotonic()
    ctx = _ctx(row, workflow_id)
    run: Run | None = None
    try:
        remote = await bk.remote_for(state, row)
        try:
            run = Run(state, row, remote, ctx)
            mappings = bk.compiled(row)
            entries: list[tuple[str, str, str | None]] = []
            for m in mappings:
                heartbeat(resume_after)  # listing a large remote takes a while: stay alive, keep the resume point
                for e in await remote.list_keys(m.remote):
                    local = m.to_local(e.key)
                    if inp.path_problem(local) is None:
                        entries.append((local, e.key, e.version))
                    else:
                        run.counts["skipped"] += 1
            entries.sort()
            run.counts["listed"] = len(entries)
            async with state.db.raw() as conn:
                items = await repo.items(conn, backend_id)
                conflicts = await repo.open_conflicts(conn, backend_id)
            todo = [e for e in entries if resume_after is None or e[0] > resume_after]
            page_size = settings.federation_sync_page_size
            for start in range(0, len(todo), page_size):
                page = todo[start:start + page_size]
                unknown = [k for _, k, v in page if v is None]
                versions = await remote.versions(unknown) if unknown else {}
                for path, key, v in page:
                    rv = v if v is not None else versions.get(key)
                    item = items.get(path)
                    if rv is None:
                        continue  # deleted (Vault soft delete) between listing and metadata
                    if item is not None and not item["remote_deleted"] and item["remote_version"] == rv \
                            and path not in conflicts:
                        run.counts["unchanged"] += 1
                    else:
                        await run.one(path, key, items, conflicts)
                    heartbeat(path)  # done up to here (the SDK throttles the calls it sends)
                if pause is not None:
                    await pause()
            await run.deletions({p for p, _, _ in entries}, items, mappings)
        finally:
            await remote.aclose()
    except RemoteError as exc:
        counts = run.counts if run is not None else {}
        await _finish(state, row, ctx, ok=False, t0=t0, counts=counts, error=exc.message,
                      health="unreachable" if exc.kind == "unavailable" else "degraded")
        back_off = settings.federation_backoff_seconds
        return {"status": "failed", "error": f"{exc.kind}: {exc.message}", "interval_seconds": interval,
                "retry_after_seconds": back_off, "counts": counts}
    await _finish(state, row, ctx, ok=True, t0=t0, counts=run.counts, error=None, health="healthy")
    return {"status": "succeeded", "interval_seconds": interval, "counts": run.counts}


async def _finish(state: Any, row: Any, ctx: Any, *, ok: bool, t0: float, counts: dict[str, int],
                  error: str | None, health: str) -> None:
    ms = round((time.monotonic() - t0) * 1000)
    audit = state.components["audit"]
    async with state.db.raw() as conn, conn.transaction():
        await repo.record_run(conn, row["id"], ok=ok, duration_ms=ms, counts=counts, error=error, health=health)
        await outbox.emit(conn, event_type="federation.sync.completed" if ok else "federation.sync.failed",
                          tenant_id=row["tenant_id"], partner_id=row["partner_id"],
                          identity_id=ctx.principal.identity_id, request_id=ctx.request_id,
                          data={"backend_id": row["id"], "duration_ms": ms, "counts": counts,
                                **({} if ok else {"error": error})})
        await audit.record(ctx, action="federation_sync", resource_type="federation_backend", resource_id=row["id"],
                           success=ok, error_code=None if ok else "service_unavailable",
                           extra={"counts": counts, "duration_ms": ms}, conn=conn)
