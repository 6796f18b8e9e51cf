"""Rotation policies (spec lifecycle.md §1.1, §1.4): validation, CRUD, attach/detach, history, due list.

Every change runs inside the caller's transaction and is audited there; after commit the router tells the
affected per-secret workflows (``services.rotation.schedule``) to reload their plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from repositories import rotation as repo
from repositories import secret_policies as sp_repo
from repositories.events import webhooks as wh_repo
from services.secrets import input as inp

DEFAULT_GRACE = "48h"
_FIELDS = {"name", "description", "interval", "grace_period", "warn_before", "auto_generate", "secret_policy_id",
           "webhook_ids", "is_active", "rotation_webhook_id"}


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def not_found(policy_id: str) -> AppError:
    return AppError("rotation_policy_not_found", f"rotation policy '{policy_id}' not found", {"id": policy_id})


def _field(name: str, message: str) -> AppError:
    return AppError("validation_error", f"{name} {message}", {"fields": [{"field": name, "message": message}]})


def parse_thresholds(value: Any, field: str = "warn_before") -> list[tuple[str, int]]:
    """``"30d,7d,1d"`` or ``["30d", "7d"]`` -> [(label, seconds)] sorted longest first, de-duplicated."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        parts = [p.strip() for p in value]
    else:
        raise _field(field, "must be a comma-separated string of durations or a list of them")
    if len(parts) > 10:
        raise _field(field, "at most 10 thresholds")
    out: dict[int, str] = {}
    for p in parts:
        seconds = int(parse_duration(p, field=field).total_seconds())
        if seconds <= 0:
            raise AppError("invalid_duration", f"{field} entries must be positive", {"field": field, "value": p})
        out.setdefault(seconds, p)
    return sorted(((label, s) for s, label in out.items()), key=lambda t: -t[1])


def _duration(value: Any, field: str) -> tuple[str, int]:
    if not isinstance(value, str) or not value.strip():
        raise _field(field, "must be a duration string such as 90d, 48h or 15m")
    seconds = int(parse_duration(value, field=field).total_seconds())
    return value.strip(), seconds


async def _validate(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any],
                    current: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a create body (``current`` None) or a PATCH over ``current``; returns the stored values."""
    unknown = sorted(set(body) - _FIELDS - ({"id", "interval_seconds", "secrets_count", "created_at", "updated_at"}
                                            if current is not None else set()))
    if unknown:
        raise AppError("validation_error", "unknown field(s)", {"fields": [
            {"field": k, "message": "unknown field"} for k in unknown]})
    merged: dict[str, Any] = dict(current or {})
    merged.update({k: v for k, v in body.items() if k in _FIELDS})
    if current is None:
        missing = [f for f in ("name", "interval") if body.get(f) is None]
        if missing:
            raise AppError("validation_error", "missing required field(s)", {"fields": [
                {"field": f, "message": "is required"} for f in missing]})
    name = merged.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 128 or "\x00" in name:
        raise _field("name", "must be a non-empty string of at most 128 characters")
    description = merged.get("description") or ""
    if not isinstance(description, str) or len(description) > 1024 or "\x00" in description:
        raise _field("description", "must be a string of at most 1024 characters")
    interval, interval_s = _duration(merged["interval"], "interval")
    if interval_s < 60:
        raise AppError("invalid_duration", "interval must be at least 1m", {"field": "interval", "value": interval})
    grace_raw = merged.get("grace_period")
    grace, grace_s = _duration(DEFAULT_GRACE if grace_raw is None else grace_raw, "grace_period")
    if grace_s > interval_s:
        raise _field("grace_period", f"must not be longer than the interval ({interval})")
    thresholds = parse_thresholds(merged.get("warn_before"))
    too_long = [label for label, s in thresholds if s >= interval_s]
    if too_long:
        raise _field("warn_before", f"thresholds {too_long} are not shorter than the interval ({interval})")
    auto = merged.get("auto_generate", False)
    active = merged.get("is_active", True)
    for key, val in (("auto_generate", auto), ("is_active", active)):
        if not isinstance(val, bool):
            raise _field(key, "must be a boolean")
    sp_id = merged.get("secret_policy_id")
    if sp_id is not None:
        if not isinstance(sp_id, str) or not sp_id:
            raise _field("secret_policy_id", "must be a secret policy id (sp_...)")
        if await sp_repo.get(conn, ctx.tenant_id, sp_id) is None:
            raise AppError("secret_policy_not_found", f"secret policy '{sp_id}' not found", {"id": sp_id})
    outside = merged.get("rotation_webhook_id")
    if outside is not None:
        if not isinstance(outside, str) or not outside:
            raise _field("rotation_webhook_id", "must be a webhook id (wh_...)")
        if await wh_repo.get(conn, ctx.tenant_id, outside) is None:
            raise AppError("webhook_not_found", f"webhook '{outside}' not found", {"id": outside})
        if not auto:
            raise _field("rotation_webhook_id", "needs auto_generate: true (ScaiVault drives the rotation)")
    hooks = merged.get("webhook_ids") or []
    if isinstance(hooks, str):
        hooks = orjson.loads(hooks)
    if not isinstance(hooks, list) or len(hooks) > 20 or not all(isinstance(h, str) and h for h in hooks):
        raise _field("webhook_ids", "must be a list of at most 20 webhook ids")
    if "webhook_ids" in body:  # the ids this request names must be webhooks of the tenant (routing.py)
        for hid in dict.fromkeys(hooks):
            if await wh_repo.get(conn, ctx.tenant_id, hid) is None:
                raise AppError("webhook_not_found", f"webhook '{hid}' not found", {"id": hid})
    return {"name": name.strip(), "description": description, "interval": interval, "interval_seconds": interval_s,
            "grace_period": grace, "grace_seconds": grace_s, "warn_before": ",".join(t[0] for t in thresholds),
            "auto_generate": auto, "secret_policy_id": sp_id, "webhook_ids": list(dict.fromkeys(hooks)),
            "is_active": active, "rotation_webhook_id": outside}


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    hooks = row["webhook_ids"]
    return {
        "id": row["id"], "name": row["name"], "description": row["description"], "interval": row["interval"],
        "interval_seconds": row["interval_seconds"], "grace_period": row["grace_period"],
        "warn_before": row["warn_before"], "auto_generate": row["auto_generate"],
        "secret_policy_id": row["secret_policy_id"],
        "webhook_ids": orjson.loads(hooks) if isinstance(hooks, str) else list(hooks or []),
        "is_active": row["is_active"], "rotation_webhook_id": row["rotation_webhook_id"],
        "secrets_count": row["secrets_count"], "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def _audit(audit: Any, ctx: RequestContext, conn: asyncpg.Connection, action: str, policy_id: str,
                 extra: dict[str, Any] | None = None, path: str | None = None) -> None:
    await audit.record(ctx, action=action, resource_type="rotation_policy", resource_id=policy_id, path=path,
                       extra=extra, conn=conn)


async def fetch(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, *,
                for_update: bool = False) -> asyncpg.Record:
    row = await repo.get_policy(conn, ctx.tenant_id, policy_id, for_update=for_update)
    if row is None:
        raise not_found(policy_id)
    return row


def _duplicate(name: str) -> AppError:
    return AppError("conflict", f"a rotation policy named '{name}' already exists", {"field": "name", "name": name})


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], audit: Any) -> dict[str, Any]:
    values = await _validate(conn, ctx, body, None)
    if await repo.name_taken(conn, ctx.tenant_id, values["name"]):
        raise _duplicate(values["name"])
    try:
        async with conn.transaction():
            row = await repo.insert_policy(conn, id=new_id("rot"), tenant_id=ctx.tenant_id,
                                           created_by=ctx.principal.identity_id, values=values)
    except asyncpg.UniqueViolationError:
        raise _duplicate(values["name"]) from None
    ctx.describe("rotation_policy_create", resource_type="rotation_policy", resource_id=row["id"])
    await _audit(audit, ctx, conn, "rotation_policy_create", row["id"], {"name": values["name"]})
    return public(row)


async def patch(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                audit: Any, *, action: str = "rotation_policy_update") -> tuple[dict[str, Any], list[int]]:
    """Returns the policy and the attached secret ids (their workflows get ``reschedule``)."""
    row = await fetch(conn, ctx, policy_id, for_update=True)
    values = await _validate(conn, ctx, body, dict(row))
    if values["name"] != row["name"] and await repo.name_taken(conn, ctx.tenant_id, values["name"], policy_id):
        raise _duplicate(values["name"])
    changed = {k: v for k, v in values.items() if k in repo.POLICY_FIELDS}
    fresh = await repo.update_policy(conn, ctx.tenant_id, policy_id, changed)
    await _audit(audit, ctx, conn, action, policy_id, {"fields": sorted(k for k in body if k in _FIELDS)})
    attached = [r["secret_id"] for r in await repo.assignments_of(conn, ctx.tenant_id, policy_id)]
    return public(fresh), attached


async def delete(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, audit: Any) -> list[int]:
    row = await fetch(conn, ctx, policy_id, for_update=True)
    detached = [r["id"] for r in await repo.delete_policy(conn, ctx.tenant_id, policy_id)]
    await _audit(audit, ctx, conn, "rotation_policy_delete", policy_id, {"name": row["name"],
                                                                        "detached": len(detached)})
    return detached


async def list_policies(conn: asyncpg.Connection, ctx: RequestContext, *, active_only: bool, after: str | None,
                        limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_policies(conn, ctx.tenant_id, active_only=active_only, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


# --------------------------------------------------------------------------------------- attach/detach
async def _live_secret(conn: asyncpg.Connection, ctx: RequestContext, path: str,
                       lock: bool = True) -> asyncpg.Record:
    row = await repo.lock_tenant_secret(conn, ctx.tenant_id, path, lock=lock)
    if row is None or row["deleted_at"] is not None:
        raise AppError("secret_not_found", f"Secret '{path}' not found", {"path": path})
    return row


def assignment_doc(policy: Mapping[str, Any], a: Mapping[str, Any], path: str) -> dict[str, Any]:
    anchor = a["anchor_at"]
    return {"policy_id": policy["id"], "secret_path": path, "assigned_at": iso(a["assigned_at"]),
            "last_rotated_at": iso(a["last_rotated_at"]),
            "next_rotation_at": iso(anchor + timedelta(seconds=policy["interval_seconds"])),
            "status": a["status"], "cycle": a["cycle"]}


async def attach(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                 audit: Any, access: Any) -> tuple[dict[str, Any], int]:
    """Attaching schedules new values for the path: the caller needs ``rotate`` on it (checked before the
    secret is looked up, so a denied path answers exactly like a missing one)."""
    inp.reject_unknown(dict(body), {"secret_path"})
    path = body.get("secret_path")
    if not isinstance(path, str):
        raise _field("secret_path", "is required")
    inp.check_path(path)
    policy = await fetch(conn, ctx, policy_id)
    await access.check(ctx, path, "rotate")
    secret = await _live_secret(conn, ctx, path)
    await repo.upsert_assignment(conn, secret_id=secret["id"], tenant_id=ctx.tenant_id, policy_id=policy_id)
    await repo.link_secret(conn, secret["id"], policy_id)
    a = await repo.assignment(conn, secret["id"])
    assert a is not None
    await _audit(audit, ctx, conn, "rotation_policy_attach", policy_id, path=path)
    return assignment_doc(policy, a, path), secret["id"]


async def detach(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, path: str, audit: Any,
                 access: Any) -> int:
    inp.check_path(path)
    await fetch(conn, ctx, policy_id)
    await access.check(ctx, path, "rotate")
    secret = await _live_secret(conn, ctx, path)
    a = await repo.assignment(conn, secret["id"], for_update=True)
    if a is None or a["policy_id"] != policy_id:
        raise AppError("secret_not_found", f"Secret '{path}' is not attached to rotation policy '{policy_id}'",
                       {"path": path, "policy_id": policy_id})
    await repo.delete_assignment(conn, secret["id"])
    await repo.link_secret(conn, secret["id"], None)
    await _audit(audit, ctx, conn, "rotation_policy_detach", policy_id, path=path)
    return int(secret["id"])


# ------------------------------------------------------------------------------------------- history
def history_doc(r: Mapping[str, Any]) -> dict[str, Any]:
    err = r["error"]
    return {"id": r["id"], "policy_id": r["policy_id"], "secret_path": r["secret_path"], "status": r["status"],
            "trigger": r["trigger"], "cycle": r["cycle"], "old_version": r["old_version"],
            "new_version": r["new_version"], "auto_generated": r["auto_generated"],
            "started_at": iso(r["started_at"]), "completed_at": iso(r["completed_at"]),
            "grace_period_ends": iso(r["grace_period_ends"]), "attempt": r["attempt"],
            "error": orjson.loads(err) if isinstance(err, str) else err}


async def history(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, *, status: str | None,
                  after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    await fetch(conn, ctx, policy_id)
    if status is not None and status not in ("success", "failed", "pending"):
        raise _field("status", "must be one of success, failed, pending")
    rows = await repo.list_history(conn, ctx.tenant_id, policy_id, status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [history_doc(r) for r in rows], (rows[-1]["id"] if more else None)


async def attached_paths(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str) -> list[str]:
    await fetch(conn, ctx, policy_id)
    return [r["path"] for r in await repo.assignments_of(conn, ctx.tenant_id, policy_id)]


async def start_manual(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, paths: list[str] | None,
                       audit: Any) -> list[tuple[dict[str, Any], int]]:
    """Create a pending history row per attached secret (optionally only ``paths``); the router then signals
    each secret's workflow ``rotate_now`` with the row's id."""
    policy = await fetch(conn, ctx, policy_id)
    if paths is not None:
        for p in paths:
            inp.check_path(p)
    rows = await repo.assignments_of(conn, ctx.tenant_id, policy_id, paths)
    if paths is not None:
        missing = sorted(set(paths) - {r["path"] for r in rows})
        if missing:
            raise AppError("secret_not_found", f"not attached to rotation policy '{policy_id}': {missing[:10]}",
                           {"paths": missing[:50], "policy_id": policy_id})
    out = []
    for a in rows:
        h = await repo.insert_history(conn, id=new_id("rh"), tenant_id=ctx.tenant_id, policy_id=policy_id,
                                      secret_id=a["secret_id"], secret_path=a["path"], cycle=a["cycle"],
                                      status="pending", trigger="manual", old_version=a["current_version"],
                                      auto_generated=bool(policy["auto_generate"]))
        await audit.record(ctx, action="rotate", path=a["path"], permission="rotate", resource_type="rotation_policy",
                           resource_id=policy_id, extra={"operation": "rotate_requested", "history_id": h["id"]},
                           conn=conn)
        out.append((history_doc(h), int(a["secret_id"])))
    return out


async def due_list(conn: asyncpg.Connection, ctx: RequestContext, *, within_hours: int, include_overdue: bool,
                   policy_id: str | None, limit: int = 1000) -> list[dict[str, Any]]:
    before = datetime.now(UTC) + timedelta(hours=within_hours)
    rows = await repo.due(conn, ctx.tenant_id, before=before, include_overdue=include_overdue, policy_id=policy_id,
                          limit=limit)
    return [{"secret_path": r["path"], "policy_id": r["policy_id"], "policy_name": r["policy_name"],
             "due_at": iso(r["due_at"]), "overdue": r["status"] == "overdue", "status": r["status"],
             "last_rotated_at": iso(r["last_rotated_at"])} for r in rows]


async def policy_of_secret(conn: asyncpg.Connection, scope: str, owner_id: str, path: str) -> asyncpg.Record | None:
    """``id``, ``deleted_at`` and the attached ``policy_id`` (or None) of a secret; None when there is none."""
    return await repo.secret_with_policy(conn, scope, owner_id, path)
