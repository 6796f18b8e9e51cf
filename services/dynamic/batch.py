"""Group commit for issuing credentials (docs/dynamic.md "Issuing throughput").

Issuing writes ScaiVault's PostgreSQL twice per credential: the ``pending`` lease row before the target is touched,
and afterwards the row's move to ``active`` together with its ``dynamic_generate`` audit entry and ``lease.created``
event. Each API process has one :class:`IssueBatcher`; both writes are queued, and the caller that finds no batch
in flight commits everything queued at that moment (up to ``MAX_BATCH``), then whatever queued meanwhile:

* **pending rows**: one autocommitted multi-row ``INSERT`` (``unnest``);
* **activation**: one autocommitted statement that moves the batch's rows from ``pending`` to ``active`` and,
  only for the rows it moved, inserts their events and audit entries (``unnest`` arrays; the same shape as the
  secrets write batch). A row the revoker took meanwhile (a TTL shorter than the creation took) is not moved and
  gets neither an audit entry nor an event.

So a credential still costs two commits, but concurrent credentials share them (one round trip and one WAL
flush per batch instead of one INSERT plus ``BEGIN``/``UPDATE``/``INSERT``/``INSERT``/``COMMIT`` each), and the
guarantees are the same: the lease row is durable before the target is touched, and nothing is returned before
the statement holding the activation, its audit entry and its event committed (all or none of them). A failed
statement fails every caller of that batch with the same error, as the one-at-a-time transaction would have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from api.context import RequestContext
from audit.entry import COLUMNS as AUDIT_COLUMNS
from audit.entry import PG_TYPES as AUDIT_TYPES
from core.ids import new_id
from core.logging import request_id_var
from db.group_commit import GroupCommitQueue
from repositories import dynamic as repo

log = logging.getLogger("scaivault.dynamic")
MAX_BATCH = 64
T = TypeVar("T")

_INSERT_PENDING = (
    "INSERT INTO dynamic_leases (id, tenant_id, partner_id, engine_id, engine_name, role_name, username, created_by,"
    " expires_at, max_expires_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])"
)
_AUDIT_COLS = ", ".join(AUDIT_COLUMNS)
_LEASE_COLS_L = ", ".join(f"l.{c.strip()}" for c in repo.LEASE_COLS.split(","))
#: $1 lease ids, $2 external ids; events $3-$6 (event id, tenant, partner, identity), $7 data, $8 request id;
#: audit entries $9-. Events and audit entries are inserted only for the rows ``act`` moved.
_ACTIVATE = (
    "WITH act AS (UPDATE dynamic_leases l SET status = 'active', external_id = k.ext"
    " FROM unnest($1::text[], $2::text[]) AS k(id, ext) WHERE l.id = k.id AND l.status = 'pending'"
    f" RETURNING {_LEASE_COLS_L}),"
    " e AS (INSERT INTO events (event_id, event_type, tenant_id, partner_id, identity_id, path, data, request_id)"
    " SELECT e.a, 'lease.created', e.b, e.c, e.d, NULL, e.f::jsonb, e.g"
    " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])"
    " WITH ORDINALITY AS e(a, b, c, d, f, g, ord) WHERE $1[e.ord] IN (SELECT id FROM act) ORDER BY e.ord),"
    f" a AS (INSERT INTO audit_log ({_AUDIT_COLS}) SELECT "
    + ", ".join(f"x.c{i}" + ("::jsonb" if c == "extra_data" else "") for i, c in enumerate(AUDIT_COLUMNS))
    + " FROM unnest(" + ", ".join(f"${9 + i}::{t}[]" for i, t in enumerate(AUDIT_TYPES)) + ") WITH ORDINALITY"
    " AS x(" + ", ".join(f"c{i}" for i in range(len(AUDIT_COLUMNS))) + ", ord) WHERE $1[x.ord] IN"
    " (SELECT id FROM act) ORDER BY x.ord)"
    " SELECT * FROM act"
)


@dataclass(slots=True)
class Pending:
    id: str
    tenant_id: str
    partner_id: str | None
    engine_id: str
    engine_name: str
    role_name: str
    username: str
    created_by: str
    expires_at: datetime
    max_expires_at: datetime


@dataclass(slots=True)
class Activation:
    """One lease to activate, with what its audit entry and event need (request id taken at submit time: the
    batch runs in whichever caller's task started it)."""

    ctx: RequestContext
    lease_id: str
    external_id: str | None
    audit_row: tuple[Any, ...]
    event_data: dict[str, Any]
    request_id: str | None = field(default_factory=request_id_var.get)


class IssueBatcher:
    def __init__(self, db: Any, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.pending = GroupCommitQueue[Pending](self._insert, max_batch)
        self.activations = GroupCommitQueue[Activation](self._activate, max_batch)
        self.stats = {"pending_batches": 0, "pending_rows": 0, "activation_batches": 0, "activations": 0}

    async def _insert(self, rows: list[Pending]) -> list[Any]:
        cols: list[list[Any]] = [[] for _ in range(10)]
        for r in rows:
            for col, v in zip(cols, (r.id, r.tenant_id, r.partner_id, r.engine_id, r.engine_name, r.role_name,
                                     r.username, r.created_by, r.expires_at, r.max_expires_at), strict=True):
                col.append(v)
        async with self.db.raw() as conn:
            await conn.execute(_INSERT_PENDING, *cols)
        self.stats["pending_batches"] += 1
        self.stats["pending_rows"] += len(rows)
        return [None] * len(rows)

    async def _activate(self, items: list[Activation]) -> list[Any]:
        """``asyncpg.Record`` of each activated lease, ``None`` for a lease the revoker took meanwhile."""
        ev: list[list[Any]] = [[] for _ in range(6)]
        for it in items:
            for col, v in zip(ev, (new_id("evt"), it.ctx.tenant_id, it.ctx.partner_id,
                                   it.ctx.principal.identity_id, orjson.dumps(it.event_data).decode(),
                                   it.request_id), strict=True):
                col.append(v)
        audit_cols = [list(col) for col in zip(*(it.audit_row for it in items), strict=True)]
        async with self.db.raw() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(
                _ACTIVATE, [it.lease_id for it in items], [it.external_id for it in items], *ev, *audit_cols)
        by_id = {r["id"]: r for r in rows}
        self.stats["activation_batches"] += 1
        self.stats["activations"] += len(rows)
        out: list[Any] = []
        for it in items:
            row = by_id.get(it.lease_id)
            if row is not None:
                it.ctx.audited = True
                it.ctx.audited_in_tx = True
            out.append(row)
        return out


def batcher(state: Any) -> IssueBatcher | None:
    """The process's batcher (None when the audit recorder cannot build rows: the one-at-a-time path)."""
    b = state.components.get("dynamic_issue_batcher")
    if b is None:
        if not hasattr(state.components.get("audit"), "build"):
            return None
        b = state.components["dynamic_issue_batcher"] = IssueBatcher(state.db)
    return b  # type: ignore[no-any-return]
