"""A rotation is a version write through the secrets write path (``SecretsService.write``), plus this hook.

``SecretsService`` calls :class:`RotationHook` (``state.components["rotation"]``) inside the write's transaction:

* ``check``: ``options.rotation_policy_id`` must name a policy of the tenant (``404 rotation_policy_not_found``);
* ``created`` / ``appended``: keep ``rotation_assignments`` in step with ``secrets.rotation_policy_id``;
* ``replayed``: the idempotency check. A rotation carries its key, the (secret, cycle) pair: the version a
  rotation writes stores the cycle number (``secret_versions.rotation_key``, unique per secret) in the same
  transaction that advances the cycle. A retried rotation for a cycle that already has its version, or whose
  cycle has moved on, writes nothing and answers with the existing version (exactly one new version per cycle,
  whatever the worker did between writing and recording);
* ``appended`` also decides whether a write *is* a rotation: one carrying a :class:`RotationWrite` (the
  scheduler, a manual rotate), or an outside write while the secret's rotation is due, overdue or failed (the
  event-driven mode). A rotation ends the cycle (new anchor), bounds the superseded version's readability to
  ``rotated_at + grace_period`` and records history; ``emit`` then adds ``secret.rotated`` and
  ``rotation.completed`` after ``secret.updated`` (``is_rotation: true``).
* ``after_commit``: wake the affected workflows (attach, detach, outside rotation).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories import rotation as repo
from repositories import secret_policies as sp_repo
from repositories.events import outbox
from repositories.secrets import NewSecret, Owner
from services.rotation import policies as pol
from services.rotation.schedule import notify
from services.secrets import input as inp

log = logging.getLogger("scaivault.rotation")
SYSTEM_JOB = "rotation-scheduler"
# Secret ids whose workflows the current task's write must wake once it commits (never audited, never shared
# between requests: each request runs in its own task and context).
_WAKE: ContextVar[list[int] | None] = ContextVar("rotation_wake", default=None)


@dataclass(frozen=True, slots=True)
class RotationWrite:
    """What a rotation write carries through ``SecretsService.write(..., rotation=...)``."""

    cycle: int
    rotated_at: datetime
    trigger: str = "schedule"  # schedule | manual
    auto_generated: bool = True
    history_id: str | None = None

    @property
    def key(self) -> str:
        return str(self.cycle)


@dataclass(slots=True)
class Outcome:
    policy: asyncpg.Record
    cycle: int
    old_version: int
    new_version: int
    rotated_at: datetime
    grace_ends: datetime
    auto_generated: bool
    trigger: str
    history_id: str

    def audit_extra(self) -> dict[str, Any]:
        return {"rotation_policy_id": self.policy["id"], "cycle": self.cycle, "trigger": self.trigger,
                "auto_generated": self.auto_generated, "history_id": self.history_id}


class RotationHook:
    def __init__(self, state: Any) -> None:
        self.state = state

    @staticmethod
    def _wake(ctx: RequestContext, secret_id: int) -> None:
        pending = _WAKE.get()
        if pending is None:
            pending = []
            _WAKE.set(pending)
        pending.append(secret_id)

    async def check(self, conn: asyncpg.Connection, ctx: RequestContext, owner: Owner, opts: inp.WriteOptions) -> None:
        pid = opts.rotation_policy_id
        if not inp.WriteOptions.is_set(pid) or pid is None:
            return
        if owner.scope != "tenant" or not await repo.policy_exists(conn, owner.owner_id, pid):
            raise pol.not_found(pid)

    async def created(self, conn: asyncpg.Connection, ctx: RequestContext, owner: Owner, secret_id: int,
                      new: NewSecret) -> None:
        if new.rotation_policy_id and owner.scope == "tenant":
            await repo.upsert_assignment(conn, secret_id=secret_id, tenant_id=owner.owner_id,
                                         policy_id=new.rotation_policy_id)
            self._wake(ctx, secret_id)

    async def settings_changed(self, conn: asyncpg.Connection, ctx: RequestContext, owner: Owner,
                               row: asyncpg.Record, new: NewSecret) -> None:
        """``options.rotation_policy_id`` set, changed or cleared (PUT or PATCH): attach, move or detach."""
        if owner.scope != "tenant" or new.rotation_policy_id == row["rotation_policy_id"]:
            return
        if new.rotation_policy_id:
            await repo.upsert_assignment(conn, secret_id=row["id"], tenant_id=owner.owner_id,
                                         policy_id=new.rotation_policy_id)
        else:
            await repo.delete_assignment(conn, row["id"])
        self._wake(ctx, row["id"])

    async def status(self, conn: asyncpg.Connection, secret_id: int) -> dict[str, Any] | None:
        """``rotation_status`` of ``GET {path}:metadata``."""
        a = await repo.assignment(conn, secret_id)
        if a is None:
            return None
        p = await repo.get_policy(conn, a["tenant_id"], a["policy_id"])
        if p is None:
            return None
        next_at = a["anchor_at"] + timedelta(seconds=p["interval_seconds"])
        state = a["status"]
        if not p["is_active"]:
            state = "paused"
        elif state == "scheduled" and next_at <= datetime.now(UTC):
            state = "due"
        return {"policy_id": p["id"], "policy_name": p["name"], "status": state, "cycle": a["cycle"],
                "auto_generate": p["auto_generate"], "last_rotated_at": pol.iso(a["last_rotated_at"]),
                "next_rotation_at": pol.iso(next_at), "due": state in ("due", "overdue", "failed"),
                "overdue": state == "overdue",
                "last_error": orjson.loads(a["last_error"]) if isinstance(a["last_error"], str) else a["last_error"]}

    async def replayed(self, conn: asyncpg.Connection, row: asyncpg.Record, rotation: RotationWrite) -> bytes | None:
        """The version this rotation already wrote (or, if the cycle moved on, the current one), else None."""
        done = await repo.version_for_key(conn, row["id"], rotation.key)
        if done is None:
            a = await repo.assignment(conn, row["id"])
            if a is None or a["cycle"] <= rotation.cycle:
                return None
            done = row["current_version"]
        return orjson.dumps({"path": row["path"], "version": done, "replayed": True})

    async def appended(self, conn: asyncpg.Connection, ctx: RequestContext, owner: Owner, row: asyncpg.Record,
                       old_version: int, new_version: int, new: NewSecret,
                       rotation: RotationWrite | None) -> Outcome | None:
        if owner.scope != "tenant":
            return None
        if rotation is None and row["rotation_policy_id"] is None and new.rotation_policy_id is None:
            return None  # the hot path: a secret without a rotation policy costs no extra query
        secret_id = row["id"]
        await self.settings_changed(conn, ctx, owner, row, new)
        a = await repo.assignment(conn, secret_id, for_update=True)
        if a is None:
            return None
        pending = await repo.pending_history(conn, secret_id)
        if rotation is None:
            if a["status"] not in ("due", "overdue", "failed") and pending is None:
                return None  # an ordinary write between rotations
            rotation = RotationWrite(cycle=a["cycle"], rotated_at=datetime.now(UTC), trigger="external",
                                     auto_generated=False, history_id=pending["id"] if pending else None)
            self._wake(ctx, secret_id)
        policy = await repo.get_policy(conn, owner.owner_id, a["policy_id"])
        assert policy is not None  # the assignment's foreign key
        await repo.set_version_key(conn, secret_id, new_version, str(a["cycle"]))
        grace_ends = rotation.rotated_at + timedelta(seconds=policy["grace_seconds"])
        await repo.end_grace(conn, secret_id, old_version, grace_ends)
        await repo.advance(conn, secret_id, rotation.rotated_at)
        done = {"status": "success", "new_version": new_version, "completed_at": datetime.now(UTC),
                "grace_period_ends": grace_ends, "auto_generated": rotation.auto_generated, "error": None}
        hid = rotation.history_id or (pending["id"] if pending else None)
        h = await repo.update_history(conn, hid, **done) if hid else None
        if h is None:
            h = await repo.insert_history(conn, id=new_id("rh"), tenant_id=owner.owner_id, policy_id=policy["id"],
                                          secret_id=secret_id, secret_path=row["path"], cycle=a["cycle"],
                                          trigger=rotation.trigger, old_version=old_version, **done)
        return Outcome(policy=policy, cycle=a["cycle"], old_version=old_version, new_version=new_version,
                       rotated_at=rotation.rotated_at, grace_ends=grace_ends, auto_generated=rotation.auto_generated,
                       trigger=rotation.trigger, history_id=h["id"])

    async def emit(self, conn: asyncpg.Connection, ctx: RequestContext, owner: Owner, path: str,
                   out: Outcome) -> None:
        base = {"tenant_id": ctx.tenant_id, "partner_id": owner.partner_id, "identity_id": ctx.principal.identity_id,
                "request_id": ctx.request_id, "path": path}
        await outbox.emit(conn, event_type="secret.rotated", **base, data={
            "old_version": out.old_version, "new_version": out.new_version, "rotation_policy_id": out.policy["id"],
            "rotation_policy_name": out.policy["name"], "grace_period_ends": pol.iso(out.grace_ends),
            "auto_generated": out.auto_generated})
        await outbox.emit(conn, event_type="rotation.completed", **base, data={
            "rotation_policy_id": out.policy["id"], "rotation_policy_name": out.policy["name"],
            "history_id": out.history_id, "trigger": out.trigger, "cycle": out.cycle,
            "old_version": out.old_version, "new_version": out.new_version, "auto_generated": out.auto_generated,
            "grace_period_ends": pol.iso(out.grace_ends)})

    async def after_commit(self, ctx: RequestContext) -> None:
        ids = _WAKE.get()
        _WAKE.set(None)
        if ids:
            s = self.state
            await notify(s.db, getattr(s, "temporal", None), s.settings, ctx.tenant_id, list(dict.fromkeys(ids)),
                         reason="secret_write")


async def setup_rotation(state: Any) -> None:
    """COMPONENTS hook: the secrets write path's rotation hook."""
    state.components["rotation"] = RotationHook(state)


# ------------------------------------------------------------------------------------ worker side
def worker_state(settings: Any, db: Any, redis: Any) -> Any:
    """The components ``SecretsService`` needs, for the rotation worker. Policies are not evaluated for
    ``system:`` principals (services/policy_access.py), so the worker needs no policy index."""
    from audit.recorder import recorder_for
    from services.access import AllowAll
    from services.keys import keyring_for
    from services.secrets.access_tracker import AccessTracker
    from services.secrets.service import SecretsService

    state = SimpleNamespace(db=db, redis=redis, settings=settings, temporal=None, components={})
    state.components.update(access=AllowAll(), audit=recorder_for(settings, db), keyring=keyring_for(settings, db))
    state.components["rotation"] = RotationHook(state)
    state.components["secrets"] = SecretsService(state, AccessTracker(db))
    from services.rotation.outside import OutsideSystem

    state.components["outside"] = OutsideSystem(settings)
    return state


def _fail(code: str, message: str, **details: Any) -> AppError:
    return AppError(code, message, details)


async def builtin_value() -> dict[str, str]:
    """No secret policy linked: a 32-character alphanumeric ``value`` (lifecycle.md §1.2, inferred fallback)."""
    from secretgen.charsets import CHARSETS
    from secretgen.generate import random_string

    return {"value": random_string(32, CHARSETS["alphanumeric"])}


async def rotate_auto(state: Any, *, tenant_id: str, secret_id: int, cycle: int, rotated_at: datetime,
                      trigger: str, history_id: str | None, workflow_id: str | None) -> dict[str, Any]:
    """Generate a value (the policy's secret policy, else the secret's, else the built-in recipe) and write it
    as the next version through the secrets write path as ``system:rotation-scheduler``."""
    from audit.recorder import system_context
    from services import secret_policies as sp
    from services.dynamic import root as dynamic_root

    async with state.db.raw() as conn:
        a = await repo.assignment(conn, secret_id)
        if a is None:
            raise _fail("rotation_policy_not_found", "the secret is no longer attached to a rotation policy",
                        secret_id=secret_id)
        if a["deleted_at"] is not None:
            raise _fail("secret_not_found", "the secret was deleted", path=a["path"])
        if a["cycle"] > cycle:  # this cycle was rotated already: by this rotation (a retry) or by an outside write
            done = await repo.version_for_key(conn, secret_id, str(cycle))
            return {"status": "replayed" if done is not None else "stale", "new_version": done}
        policy = await repo.get_policy(conn, tenant_id, a["policy_id"])
        if policy is None:
            raise pol.not_found(a["policy_id"])
        sp_id = policy["secret_policy_id"] or a["secret_secret_policy_id"]
        sp_row = await sp_repo.get(conn, tenant_id, sp_id) if sp_id else None
    owner = Owner("tenant", tenant_id, a["partner_id"])
    ctx = system_context(SYSTEM_JOB, tenant_id, partner_id=a["partner_id"], workflow_id=workflow_id,
                         action="rotate", path=a["path"])
    if policy["rotation_webhook_id"]:  # the outside-system saga (services/rotation/outside.py)
        outside = state.components["outside"]
        value, target, rotation_id = await outside.pending_value(
            state, webhook_id=policy["rotation_webhook_id"], owner=owner, path=a["path"], secret_id=secret_id,
            cycle=cycle, current_version=a["current_version"])
        rot = RotationWrite(cycle=cycle, rotated_at=rotated_at, trigger=trigger, auto_generated=False,
                            history_id=history_id)
        _, body = await state.components["secrets"].write(ctx, owner, a["path"], {"data": value}, rotation=rot)
        doc = orjson.loads(body)
        await outside.promoted(state, target, rotation_id, secret_id=secret_id, path=a["path"], cycle=cycle,
                               new_version=doc.get("version"))
        return {"status": "replayed" if doc.get("replayed") else "success", "old_version": a["current_version"],
                "new_version": doc.get("version")}
    if sp_id and sp_row is None:
        raise _fail("secret_policy_not_found", f"secret policy '{sp_id}' not found", id=sp_id)
    try:
        data = await sp.generate_values(sp.spec_of(sp_row)) if sp_row is not None else await builtin_value()
    except AppError:
        raise
    except Exception as exc:  # a generator failure never carries a value
        raise _fail("internal_error", f"value generation failed ({type(exc).__name__})") from None
    rot = RotationWrite(cycle=cycle, rotated_at=rotated_at, trigger=trigger, auto_generated=True,
                        history_id=history_id)
    # a dynamic engine's root secret is set at its source first (services/dynamic/root.py)
    root_version = await dynamic_root.rotate_if_engine_root(state, ctx, owner, a["path"], rotation=rot)
    if root_version is not None:
        return {"status": "success", "old_version": a["current_version"], "new_version": root_version}
    _, body = await state.components["secrets"].write(ctx, owner, a["path"], {"data": data}, rotation=rot)
    doc = orjson.loads(body)
    return {"status": "replayed" if doc.get("replayed") else "success", "old_version": a["current_version"],
            "new_version": doc.get("version")}
