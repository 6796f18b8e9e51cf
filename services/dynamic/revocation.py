"""Durable, rate-limited, audited lease revocation (docs/dynamic.md "Revocation").

One ``LeaseRevoker`` workflow per engine (``<prefix>lease-revoker/<tenant>/<engine_id>``, task queue ``leases``)
sleeps until the engine's earliest due lease (read from PostgreSQL, the source of truth) and runs
``revoke_due``: due leases in expiry order, in batches of ``DYNAMIC_REVOCATION_BATCH_SIZE`` statements per
transaction, over at most ``DYNAMIC_REVOCATION_CONCURRENCY`` connections, at most
``DYNAMIC_REVOCATION_RATE_PER_SECOND`` leases per second (engine ``config.revocation_rate_per_second`` wins).

A lease is marked ``revoked`` only after the target confirmed (statements committed, or the role/user is gone).
A failure records the scrubbed error, ``attempts`` and ``next_attempt_at`` (exponential backoff from
``DYNAMIC_REVOCATION_BACKOFF_SECONDS`` up to ``DYNAMIC_REVOCATION_BACKOFF_MAX_SECONDS``); after
``DYNAMIC_REVOCATION_MAX_ATTEMPTS`` failures the status is ``revocation_failed`` (still retried at the capped
backoff; ``POST /v1/dynamic/leases/{id}/revoke`` or the ``retry_failed`` signal retries at once).
Every revocation is audited ``dynamic_revoke`` as ``system:lease-revoker`` with ``lease.expired`` (at expiry) or
``lease.revoked`` (explicitly requested) in the same transaction as the status change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from core import metrics
from repositories import dynamic as repo
from repositories.events import outbox
from services.dynamic import aws, postgres
from services.dynamic.common import SYSTEM_REVOKER, iso, now
from services.dynamic.engines import Handle, Targets
from services.dynamic.postgres import TargetError

log = logging.getLogger("scaivault.dynamic")
LEASES_QUEUE = "leases"


def workflow_id(settings: Any, tenant_id: str, engine_id: str) -> str:
    return f"{settings.temporal_task_queue_prefix}lease-revoker/{tenant_id}/{engine_id}"


async def signal(state: Any, tenant_id: str, engine_id: str, name: str, arg: Any, *, strict: bool = False) -> bool:
    """Signal-with-start the engine's revoker. Without ``strict`` a Temporal failure is logged (the lease rows
    stay authoritative: the worker's start-up reconcile and the next wake pick them up)."""
    from worker.client import with_deadline
    from workflows.types.dynamic import REVOKER_WORKFLOW, RevokerInput

    temporal = getattr(state, "temporal", None)
    if temporal is None:
        if strict:
            from core.errors import AppError

            raise AppError("service_unavailable", "Temporal is not available; retry later", {"service": "temporal"})
        return False
    from worker.visibility import start_options

    s = state.settings
    visibility = start_options(s, area="lease", tenant_id=tenant_id, resource_id=engine_id,
                               summary=f"lease revoker of dynamic engine {engine_id}")
    try:
        await with_deadline(s, lambda rpc_timeout: temporal.start_workflow(
            REVOKER_WORKFLOW, RevokerInput(tenant_id=tenant_id, engine_id=engine_id,
                                           idle_seconds=int(s.dynamic_revoker_idle_seconds)),
            id=workflow_id(s, tenant_id, engine_id), task_queue=s.task_queue(LEASES_QUEUE),
            start_signal=name, start_signal_args=[arg], rpc_timeout=rpc_timeout, **visibility),
            action=f"leases.{name}")
        return True
    except Exception:
        if strict:
            raise
        log.warning("could not signal the lease revoker", extra={"engine_id": engine_id, "signal": name})
        return False


async def wake(state: Any, tenant_id: str, engine_id: str, *, strict: bool = False, reason: str = "") -> bool:
    from workflows.types.dynamic import WAKE_SIGNAL, Wake

    return await signal(state, tenant_id, engine_id, WAKE_SIGNAL, Wake(reason), strict=strict)


class RateLimiter:
    """A token bucket (``rate`` per second, burst = one batch) for one engine's revocations."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.capacity = float(max(burst, 1))
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        async with self._lock:
            while True:
                t = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (t - self.stamp) * self.rate)
                self.stamp = t
                if self.tokens >= n or (self.tokens >= self.capacity and n > self.capacity):
                    self.tokens -= n
                    return
                await asyncio.sleep((min(n, self.capacity) - self.tokens) / self.rate)


def backoff(settings: Any, attempts: int) -> timedelta:
    base = float(settings.dynamic_revocation_backoff_seconds)
    cap = float(settings.dynamic_revocation_backoff_max_seconds)
    return timedelta(seconds=min(cap, base * (2 ** max(attempts, 0))))


async def _role_statements(conn: asyncpg.Connection, engine: Mapping[str, Any], role_names: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in role_names:
        row = await repo.get_role(conn, engine["tenant_id"], engine["id"], name)
        out[name] = repo.config_of(row) if row is not None else {}
    return out


async def at_target(handle: Handle, engine: Mapping[str, Any], roles: Mapping[str, Any],
                    leases: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Run the revocation at the target for leases of one role each group; ``{lease_id: None | error}``."""
    out: dict[str, str | None] = {}
    by_role: dict[str, list[Mapping[str, Any]]] = {}
    for lease in leases:
        by_role.setdefault(lease["role_name"], []).append(lease)
    for role_name, group in by_role.items():
        cfg = roles.get(role_name, {})
        if handle.pool is not None:
            res = await postgres.revoke(handle.pool, cfg.get("revocation_statements") or [],
                                        [g["username"] for g in group])
            out.update({g["id"]: res.get(g["username"], "no result") for g in group})
        elif handle.client is not None:
            kinds = {g["username"]: ("assumed_role" if (g["external_id"] or "").startswith("sts:") else "iam_user")
                     for g in group}
            res = await aws.revoke(handle.client, kinds, [g["username"] for g in group])
            out.update({g["id"]: res.get(g["username"], "no result") for g in group})
    return out


async def record(state: Any, engine: Mapping[str, Any], results: Mapping[str, str | None],
                 leases: Mapping[str, Mapping[str, Any]], *, workflow_id_: str | None) -> tuple[int, int]:
    """Store the outcome of one batch: confirmed leases become ``revoked`` (audit + event in the same
    transaction), failed ones get their error and next attempt. Returns (revoked, failed)."""
    from audit.recorder import system_context

    settings = state.settings
    audit = state.components["audit"]
    ok = [lid for lid, err in results.items() if err is None]
    bad = {lid: err for lid, err in results.items() if err is not None}
    async with state.db.raw() as conn, conn.transaction():
        rows = await repo.mark_revoked(conn, ok) if ok else []
        for r in rows:
            reason = r["revoke_reason"] or "expired"
            ctx = system_context(SYSTEM_REVOKER, r["tenant_id"], partner_id=r["partner_id"],
                                 workflow_id=workflow_id_)
            await audit.record(ctx, action="dynamic_revoke", resource_type="lease", resource_id=r["id"],
                               extra={"engine": r["engine_name"], "role": r["role_name"], "username": r["username"],
                                      "reason": reason, "requested_by": r["revoke_requested_by"]}, conn=conn)
            await outbox.emit(conn, event_type="lease.expired" if reason == "expired" else "lease.revoked",
                              tenant_id=r["tenant_id"], partner_id=r["partner_id"],
                              identity_id=f"system:{SYSTEM_REVOKER}",
                              data={"lease_id": r["id"], "engine": r["engine_name"], "role": r["role_name"],
                                    "username": r["username"], "reason": reason,
                                    "expires_at": iso(r["expires_at"]), "revoked_at": iso(r["revoked_at"]),
                                    "requested_by": r["revoke_requested_by"]},
                              request_id=workflow_id_)
        max_attempts = int(settings.dynamic_revocation_max_attempts)
        for lid, err in bad.items():
            attempts = int(leases[lid]["attempts"])
            await repo.mark_failed_attempt(conn, lid, error=err or "unknown error",
                                           next_attempt_at=now() + backoff(settings, attempts),
                                           failed_after=max_attempts)
    if bad:
        log.warning("lease revocation failed", extra={"engine": engine["name"], "failed": len(bad)})
    return len(rows), len(bad)


async def revoke_due(state: Any, targets: Targets, tenant_id: str, engine_id: str, *,
                     heartbeat: Callable[[Any], None] = lambda _: None, workflow_id_: str | None = None,
                     run_seconds: float = 60.0) -> dict[str, Any]:
    """One revoker pass over the engine's due leases (bounded by ``run_seconds``)."""
    s = state.settings
    async with state.db.raw() as conn:
        engine = await repo.engine_by_id(conn, tenant_id, engine_id)
    if engine is None:
        return {"engine_exists": False}
    if engine["revocation_paused"]:
        async with state.db.raw() as conn:
            nxt = await repo.next_due(conn, engine_id)
            await repo.set_wake(conn, engine_id, nxt)  # resume wakes the revoker; new leases need not
        return {"paused": True, "next_due_in_seconds": _until(nxt)}
    cfg = repo.config_of(engine)
    rate = float(cfg.get("revocation_rate_per_second") or s.dynamic_revocation_rate_per_second)
    batch = max(1, int(s.dynamic_revocation_batch_size))
    limiter = RateLimiter(rate, batch)
    sem = asyncio.Semaphore(max(1, int(s.dynamic_revocation_concurrency)))
    revoked = failed = 0
    deadline = time.monotonic() + run_seconds
    more = False
    try:
        handle = await targets.handle(state, engine)
    except Exception as exc:  # root secret unreadable, KMS down...: every due lease gets a failed attempt
        handle = None
        target_error = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    while time.monotonic() < deadline:
        async with state.db.raw() as conn:
            due = await repo.due(conn, engine_id, batch * max(1, int(s.dynamic_revocation_concurrency)) * 4)
            roles = await _role_statements(conn, engine, {d["role_name"] for d in due})
        if not due:
            more = False
            break
        by_id = {d["id"]: d for d in due}
        chunks = [due[i:i + batch] for i in range(0, len(due), batch)]

        async def one(chunk: list[asyncpg.Record], roles: dict[str, Any] = roles,
                      by_id: dict[str, Any] = by_id) -> tuple[int, int]:
            async with sem:
                await limiter.take(len(chunk))
                if handle is None:
                    res: dict[str, str | None] = {c["id"]: target_error for c in chunk}
                else:
                    try:
                        res = await at_target(handle, engine, roles, chunk)
                    except TargetError as exc:
                        res = {c["id"]: str(exc) for c in chunk}
                return await record(state, engine, res, by_id, workflow_id_=workflow_id_)

        for r, f in await asyncio.gather(*(one(c) for c in chunks)):
            revoked += r
            failed += f
        heartbeat({"revoked": revoked, "failed": failed})
        if handle is not None and failed and revoked == 0:
            await targets.forget(engine_id)  # a down target: rebuild the pool (and re-read root creds) next time
            break
        more = True
    async with state.db.raw() as conn:
        nxt = await repo.next_due(conn, engine_id)
        failing = await repo.failing(conn, engine_id)
        wake_at = nxt
        await repo.set_wake(conn, engine_id, wake_at)
        live = await repo.live_count(conn, engine_id)
    metrics.LEASES_ACTIVE.labels(engine=engine["name"]).set(live)
    due_in = _until(nxt)
    return {"revoked": revoked, "failed": failed, "more_due": more and due_in is not None and due_in <= 0,
            "next_due_in_seconds": due_in,
            "failing": [{"lease_id": f["id"], "attempts": f["attempts"], "status": f["status"],
                         "last_error": f["last_error"] or ""} for f in failing]}


def _until(ts: Any) -> float | None:
    if ts is None:
        return None
    return max(0.0, (ts - now()).total_seconds())


async def retry(state: Any, tenant_id: str, engine_id: str, lease_ids: Sequence[str]) -> int:
    """Make failing leases due now (signal ``retry_failed`` / the API)."""
    async with state.db.raw() as conn:
        ids = list(lease_ids) or [f["id"] for f in await repo.failing(conn, engine_id, limit=100_000)]
        if not ids:
            return 0
        rows = await conn.fetch("UPDATE dynamic_leases SET next_attempt_at = now() WHERE engine_id = $1"
                                " AND id = ANY($2) AND status <> 'revoked' RETURNING id", engine_id, ids)
    return len(rows)


Awaitable_ = Awaitable  # keep the import for type users
