"""Group commit for ``PUT /v1/secrets/{path}`` (issue 13; docs/performance.md "The write path").

Each API process has one :class:`WriteBatcher`. A write that passed every check that needs no row (path, policy,
body, options, key) is queued; if no batch is in flight, the caller's task starts one, which takes everything
queued at that moment (up to ``SECRETS_WRITE_BATCH_MAX``) and commits it:

1. **Optimistic round** (two round trips, no explicit transaction): read the batch's secret rows unlocked, assign
   consecutive versions in queue order, seal each value for its version (the AAD binds path and version), then
   one autocommitted statement that moves each secret row from the version read to its final version and, only
   for the rows it moved, inserts every version, every ``secret.updated`` outbox event and every audit entry
   (``unnest`` arrays, queue order). No lock is held between round trips, and the whole batch pays one WAL
   flush.
2. **Locked round**, only for writes whose row another process changed between the read and the statement
   (the statement waited for that writer, re-checked, and left the row alone): ``BEGIN``, lock those rows in
   (scope, owner, path) order (``FOR UPDATE`` with ``ORDER BY``: two processes never deadlock), the same
   statement, ``COMMIT``. It cannot lose the race. A row that lost a race in the last two seconds (a hot path
   written through several processes) goes straight to this round: there the processes take turns on the
   row lock instead of wasting statements on races they would lose.

While a batch commits, the next one queues, so 64 writers on one path no longer hold 64 connections waiting on
one row lock: consecutive versions of that path are committed together, each with its own audit entry and event
(``seq`` order = version order).

Everything the batch does not handle goes back to the caller, which runs the one-write transaction
(``SecretsService.write``) exactly as before: creating a path, a deleted row, rows or options that involve
rotation, ``max_versions`` (pruning inside one statement would not see the versions it inserts), and any
write in a batch whose statement failed. A write's own error (``cas`` mismatch) fails only that write; the rest
of the batch commits without it. Nothing of a write is acknowledged before the statement holding it commits;
a crash before that leaves none of it behind, after it all of it (version, audit entry and event together).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from audit.entry import COLUMNS as AUDIT_COLUMNS
from audit.entry import PG_TYPES as AUDIT_TYPES
from core.errors import AppError
from core.ids import new_id
from core.logging import request_id_var
from crypto import envelope
from db.engine import connection_lost
from db.group_commit import GroupCommitQueue
from repositories.secrets import NewSecret, Owner
from services.secrets import input as inp

log = logging.getLogger("scaivault.secrets")

#: A row another process wrote between our read and our statement is "contended" for this long: its writes skip
#: the optimistic round (which would most likely lose again) and go straight to the locked round.
_CONTENDED_SECONDS = 2.0

#: What :meth:`WriteBatcher.submit` returns when the write is not for a batch: run the one-write transaction.
FALLBACK: Any = object()

_ROW_COLS = (
    "s.id, s.scope, s.owner_id, s.path, s.secret_type, s.current_version, s.metadata::text AS metadata,"
    " s.max_versions, s.rotation_policy_id, s.secret_policy_id, s.notify_before, s.deleted_at, s.created_at"
    " FROM secrets s JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(scope, owner_id, path)"
    " ON s.scope = k.scope AND s.owner_id = k.owner_id AND s.path = k.path"
)
#: The rows as they are now, unlocked: the optimistic round's expected versions.
_READ_MANY = f"SELECT {_ROW_COLS}"
#: The rows locked in (scope, owner, path) order: the retry round, which cannot lose a race.
_LOCK_MANY = f"SELECT {_ROW_COLS} ORDER BY s.scope, s.owner_id, s.path FOR UPDATE OF s"

_AUDIT_COLS = ", ".join(AUDIT_COLUMNS)
_AUDIT_N = len(AUDIT_COLUMNS)
#: One statement (autocommitted on its own, or inside the retry round's transaction). ``u`` moves each secret
#: row from the version the plan expected to its final version and skips a row that moved meanwhile (under
#: READ COMMITTED a concurrent writer's update is waited for, then the condition re-checked on the new row);
#: versions, events and audit entries are inserted only for the rows ``u`` moved, in queue order.
_APPLY = (
    "WITH x AS MATERIALIZED (SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::text[], $5::text[],"
    " $6::timestamptz[], $7::text[], $8::text[], $9::text[]) AS x(id, expected, version, secret_type, metadata,"
    " expires_at, secret_policy_id, notify_before, actor)),"
    " u AS (UPDATE secrets s SET current_version = x.version, secret_type = x.secret_type,"
    " metadata = x.metadata::jsonb, expires_at = x.expires_at, secret_policy_id = x.secret_policy_id,"
    " notify_before = x.notify_before, updated_at = now(), updated_by = x.actor FROM x"
    " WHERE s.id = x.id AND s.current_version = x.expected AND s.deleted_at IS NULL"
    " AND s.rotation_policy_id IS NULL AND s.max_versions IS NULL RETURNING s.id, s.updated_at),"
    " v AS (INSERT INTO secret_versions (secret_id, version, ciphertext, created_by, expires_at)"
    " SELECT n.sid, n.version, n.ciphertext, n.actor, n.expires_at FROM unnest($10::bigint[], $11::int[],"
    " $12::bytea[], $13::text[], $14::timestamptz[]) AS n(sid, version, ciphertext, actor, expires_at)"
    " WHERE n.sid IN (SELECT id FROM u)),"
    " e AS (INSERT INTO events (event_id, event_type, tenant_id, partner_id, identity_id, path, data, request_id)"
    " SELECT e.a, 'secret.updated', e.b, e.c, e.d, e.e, e.f::jsonb, e.g"
    " FROM unnest($15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[])"
    " WITH ORDINALITY AS e(a, b, c, d, e, f, g, ord) WHERE $10[e.ord] IN (SELECT id FROM u) ORDER BY e.ord),"
    f" a AS (INSERT INTO audit_log ({_AUDIT_COLS}) SELECT "
    + ", ".join(f"l.c{i}" + ("::jsonb" if c == "extra_data" else "") for i, c in enumerate(AUDIT_COLUMNS))
    + " FROM unnest(" + ", ".join(f"${22 + i}::{t}[]" for i, t in enumerate(AUDIT_TYPES)) + ") WITH ORDINALITY"
    " AS l(" + ", ".join(f"c{i}" for i in range(_AUDIT_N)) + ", ord) WHERE $10[l.ord] IN (SELECT id FROM u)"
    " ORDER BY l.ord)"
    " SELECT id, updated_at FROM u"
)


@dataclass(slots=True)
class PendingWrite:
    """One checked PUT waiting for a batch (``plaintext`` None: checked against the stored type in the batch)."""

    ctx: RequestContext
    owner: Owner
    path: str
    doc: dict[str, Any]
    given_type: str | None
    plaintext: bytes | None
    metadata: dict[str, Any] | None
    opts: inp.WriteOptions
    kek: Any
    action: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.owner.scope, self.owner.owner_id, self.path)


def batchable(opts: inp.WriteOptions, rotation: Any) -> bool:
    """Writes the batch may take without looking at the row: no rotation, no attach, no version limit."""
    return (rotation is None and not inp.WriteOptions.is_set(opts.rotation_policy_id)
            and not (inp.WriteOptions.is_set(opts.max_versions) and opts.max_versions is not None))


@dataclass(slots=True)
class _Applied:
    w: PendingWrite
    secret_id: int
    version: int
    new: NewSecret
    created_at: datetime
    blob: bytes


class WriteBatcher:
    """Per-process group commit of appends (see the module docstring). ``service`` is the SecretsService."""

    def __init__(self, service: Any, *, max_batch: int = 128) -> None:
        self.service = service
        self._queue = GroupCommitQueue[PendingWrite](self._run, max_batch)
        self._contended: dict[tuple[str, str, str], float] = {}  # key -> when another process last beat us to it
        #: Batches committed and writes in them (``/v1/health/detailed``-style introspection and tests).
        self.stats = {"batches": 0, "writes": 0, "retried": 0, "fallbacks": 0, "failed_batches": 0}

    async def submit(self, w: PendingWrite) -> Any:
        """The write's response body, or :data:`FALLBACK`. Raises the write's own error (e.g. a cas conflict)."""
        return await self._queue.submit(w)

    async def _run(self, batch: list[PendingWrite]) -> list[Any]:
        """One result per write: its body, its own error, or FALLBACK."""
        answers: dict[int, Any] = {}
        try:
            await self._commit(batch, answers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(batch, exc, answers)
        out = [answers.get(id(w), FALLBACK) for w in batch]
        self.stats["fallbacks"] += sum(1 for r in out if r is FALLBACK)
        return out

    def _failed(self, batch: list[PendingWrite], exc: Exception, answers: dict[int, Any]) -> None:
        """Answer every write the failed batch did not. A statement PostgreSQL rejected (or a check of ours)
        committed nothing, so those writes run again on their own and each gets its own answer. A lost
        connection (or an exhausted pool) leaves a statement's fate unknown: running the writes again could
        commit them twice, so each gets the error instead (503 with Retry-After)."""
        self.stats["failed_batches"] += 1
        alone = isinstance(exc, (asyncpg.PostgresError, AppError)) and not connection_lost(exc)
        if alone or isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, AppError)):
            log.warning("write batch failed", extra={"error": type(exc).__name__, "writes": len(batch),
                                                      "retried_alone": alone})
        else:
            log.error("write batch failed", exc_info=(type(exc), exc, exc.__traceback__))
        for w in batch:
            answers.setdefault(id(w), FALLBACK if alone else exc)

    async def _commit(self, batch: list[PendingWrite], answers: dict[int, Any]) -> None:
        """Round 1, optimistic: read the rows unlocked, seal each value for the version it will get, and apply
        everything in one autocommitted statement (one round trip and one WAL flush; no lock held between
        round trips). The writes whose row moved meanwhile (another process wrote it) go to round 2, which
        locks their rows in a transaction first and so cannot lose the race."""
        now = time.monotonic()
        hot = {k for k, seen in self._contended.items() if now - seen < _CONTENDED_SECONDS}
        if len(self._contended) > 4096:
            self._contended = {k: self._contended[k] for k in hot}
        optimistic = [w for w in batch if w.key not in hot]
        locked = [w for w in batch if w.key in hot]
        async with self.service.db.raw() as conn:
            if optimistic:
                moved = self._settle(*await self._round(conn, optimistic, _READ_MANY), answers)
                for w in moved:
                    self._contended[w.key] = now
                self.stats["retried"] += len(moved)
                locked += moved
            if locked:
                async with conn.transaction():
                    outcome = await self._round(conn, locked, _LOCK_MANY)
                self._settle(*outcome, answers)  # a locked row cannot move: anything left takes the one-write path
        self.stats["batches"] += 1

    async def _round(self, conn: asyncpg.Connection, batch: list[PendingWrite], read: str
                     ) -> tuple[list[_Applied], dict[int, datetime], list[tuple[PendingWrite, AppError]]]:
        """Plan ``batch`` against the rows ``read`` returns and apply it: (planned writes, updated_at of each
        secret row the statement moved, writes that failed on their own)."""
        keys = sorted({w.key for w in batch})
        rows = await conn.fetch(read, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
        by_key = {(r["scope"], r["owner_id"], r["path"]): r for r in rows}
        fallback_keys = {k for k in keys if not _plain(by_key.get(k))}
        errors: list[tuple[PendingWrite, AppError]] = []
        applied = self._plan(batch, by_key, fallback_keys, errors)
        updated: dict[int, datetime] = {}
        if applied:
            stamps = await conn.fetch(_APPLY, *self._arrays(applied))
            updated = {r["id"]: r["updated_at"] for r in stamps}
        return applied, updated, errors

    def _settle(self, applied: list[_Applied], updated: dict[int, datetime],
                errors: list[tuple[PendingWrite, AppError]], answers: dict[int, Any]) -> list[PendingWrite]:
        """Answer each committed write and each write's own error; returns the writes whose row moved."""
        svc = self.service
        moved: list[PendingWrite] = []
        for a in applied:
            if a.secret_id not in updated:
                moved.append(a.w)
                continue
            body = svc._write_body(a.w.owner, a.w.path, a.version, a.new, a.created_at, updated[a.secret_id],
                                   metadata_json=a.new.metadata_json)
            self.stats["writes"] += 1
            a.w.ctx.audited = True
            a.w.ctx.audited_in_tx = True
            answers[id(a.w)] = body
        for w, exc in errors:
            answers[id(w)] = exc
        return moved

    def _plan(self, batch: list[PendingWrite], by_key: dict[tuple[str, str, str], asyncpg.Record],
              fallback_keys: set[tuple[str, str, str]], errors: list[tuple[PendingWrite, AppError]]
              ) -> list[_Applied]:
        """Assign versions in queue order and seal each value; a write's own error is its result alone."""
        svc = self.service
        now = datetime.now(UTC)
        state: dict[tuple[str, str, str], dict[str, Any]] = {}
        applied: list[_Applied] = []
        for w in batch:
            if w.key in fallback_keys:
                continue  # answered FALLBACK after the commit
            row = by_key[w.key]
            st = state.get(w.key)
            if st is None:
                st = state[w.key] = {
                    "current_version": row["current_version"], "secret_type": row["secret_type"],
                    "metadata": row["metadata"], "max_versions": row["max_versions"],
                    "rotation_policy_id": row["rotation_policy_id"], "secret_policy_id": row["secret_policy_id"],
                    "notify_before": row["notify_before"],
                }
            try:
                current = st["current_version"]
                if w.opts.cas is not None and w.opts.cas != current:
                    raise _conflict(w.path, w.opts.cas, current)
                secret_type = w.given_type or st["secret_type"]
                plaintext = w.plaintext if w.plaintext is not None else inp.check_data(w.doc["data"], secret_type)
                metadata = w.metadata if w.metadata is not None else orjson.loads(st["metadata"])
                new = svc._new(w.ctx, secret_type, metadata, w.opts, st, now)
                version = current + 1
                blob = envelope.seal(plaintext, w.kek.key, w.kek.version, svc._aad(w.owner, w.path, version))
            except AppError as exc:
                errors.append((w, exc))
                continue
            st.update(current_version=version, secret_type=new.secret_type, metadata=new.metadata_json,
                      secret_policy_id=new.secret_policy_id, notify_before=new.notify_before)
            applied.append(_Applied(w, row["id"], version, new, row["created_at"], blob))
        return applied

    def _arrays(self, applied: list[_Applied]) -> list[Any]:
        """The statement's parameters: final secret rows ($1-$9), then per write, in queue order, its version
        ($10-$14), its event ($15-$21) and its audit entry ($22-)."""
        svc = self.service
        audit = svc.deps.audit
        first: dict[int, _Applied] = {}
        last: dict[int, _Applied] = {}
        versions: list[list[Any]] = [[], [], [], [], []]
        events: list[list[Any]] = [[], [], [], [], [], [], []]
        audits: list[tuple[Any, ...]] = []
        for a in applied:
            w, new = a.w, a.new
            first.setdefault(a.secret_id, a)
            last[a.secret_id] = a
            for col, value in zip(versions, (a.secret_id, a.version, a.blob, new.actor, new.expires_at), strict=True):
                col.append(value)
            base = svc._event_base(w.ctx, w.owner)
            data = svc._scoped(w.owner, {"old_version": a.version - 1, "new_version": a.version,
                                         "updated_by": new.actor, "is_rotation": False})
            for col, value in zip(events, (new_id("evt"), base["tenant_id"], base["partner_id"],
                                           base["identity_id"], w.path, orjson.dumps(data).decode(),
                                           base["request_id"] or request_id_var.get()), strict=True):
                col.append(value)
            audits.append(audit.build(w.ctx, action=w.action, path=w.path, permission="write",
                                      version=a.version).as_row())
        ids = sorted(last)  # row locks are taken in id order, the same in every process
        finals = [last[i] for i in ids]
        rows: list[list[Any]] = [
            ids, [first[i].version - 1 for i in ids], [a.version for a in finals],
            [a.new.secret_type for a in finals], [a.new.metadata_json for a in finals],
            [a.new.expires_at for a in finals], [a.new.secret_policy_id for a in finals],
            [a.new.notify_before for a in finals], [a.new.actor for a in finals],
        ]
        audit_cols = [list(col) for col in zip(*audits, strict=True)]
        return [*rows, *versions, *events, *audit_cols]


def _plain(row: asyncpg.Record | None) -> bool:
    """A row the batch can append to: it exists, is live, and involves neither rotation nor a version limit."""
    return (row is not None and row["deleted_at"] is None and row["rotation_policy_id"] is None
            and row["max_versions"] is None)


def _conflict(path: str, expected: int, current: int) -> AppError:
    from services.secrets.service import _conflict as conflict

    return conflict(path, expected, current)


def make_batcher(service: Any, settings: Any) -> WriteBatcher | None:
    """The process's batcher, unless ``SECRETS_WRITE_BATCH_MAX`` is 0 (every write its own transaction)."""
    size = int(getattr(settings, "secrets_write_batch_max", 128) or 0)
    if size <= 0 or not hasattr(service.deps.audit, "build"):
        return None
    return WriteBatcher(service, max_batch=size)

