"""Identity-cache rules behind /v1/identity: who sees which partners/tenants, sync triggering (signal-with-start
of the tenant's entity workflow), sync run views, resolve, and admin-role changes (core.md §10.6).

Visibility: super admins see everything; partner admins see their partner's tenants; everyone else sees their
effective tenant. A tenant outside the caller's reach answers like the tenant resolver does (403/404).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from auth.principal import ROLES
from core.errors import AppError
from core.ids import new_id
from core.settings import Settings
from db.engine import Database
from repositories.identity import admins as admins_repo
from repositories.identity import cache as cache_repo
from repositories.identity import directory as directory_repo
from repositories.identity import sync_runs as runs_repo
from workflows.types.identity import SWEEP_WORKFLOW, SYNC_WORKFLOW, ForceSync, SweepInput, SyncState

log = logging.getLogger("scaivault.identity")

ROLE_DESCRIPTIONS = {
    "tenant_admin": "administers one tenant",
    "partner_admin": "administers every tenant of a partner and may switch between them",
    "super_admin": "administers the whole installation; only a super_admin may grant it",
}
ROLE_RANK = {"tenant_admin": 1, "partner_admin": 2, "super_admin": 3}


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------- workflows
def sync_workflow_id(settings: Settings, tenant_id: str) -> str:
    return f"{settings.temporal_task_queue_prefix}scaikey-sync/{tenant_id}"


def sweep_workflow_id(settings: Settings, sync_id: str) -> str:
    return f"{settings.temporal_task_queue_prefix}scaikey-sync-sweep/{sync_id}"


def initial_state(settings: Settings, tenant_id: str) -> SyncState:
    """The entity's own timer is a fallback at 1.5x the Schedule's interval: in steady state the scheduled sweep's
    signal arrives first and restarts the wait, so a tenant syncs once per interval, not twice."""
    interval = max(60, int(settings.identity_sync_interval_minutes * 60 * 1.5))
    return SyncState(tenant_id=tenant_id, interval_seconds=interval,
                     heartbeat_timeout_seconds=settings.identity_sync_heartbeat_seconds,
                     retry_attempts=settings.identity_sync_retry_attempts)


async def start_tenant_sync(temporal: Any, settings: Settings, tenant_id: str, sync_id: str, *, reason: str = "",
                            trigger: str = "manual") -> None:
    """Signal-with-start ``scaikey-sync/<tenant>``: starts the entity if it is not running, then signals it."""
    from worker.client import with_deadline
    from worker.registry import IDENTITY
    from worker.visibility import start_options

    visibility = start_options(settings, area="sync", tenant_id=tenant_id, resource_id=tenant_id,
                               summary=f"ScaiKey identity sync of tenant {tenant_id}")
    await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
        SYNC_WORKFLOW, initial_state(settings, tenant_id), id=sync_workflow_id(settings, tenant_id),
        task_queue=settings.task_queue(IDENTITY), start_signal="force_sync",
        start_signal_args=[ForceSync(sync_id=sync_id, reason=reason, trigger=trigger)], rpc_timeout=rpc_timeout,
        **visibility,
    ), action="identity_sync.signal_with_start")


async def start_sweep(temporal: Any, settings: Settings, sync_id: str, *, partner_id: str | None,
                      reason: str = "") -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from worker.client import with_deadline
    from worker.registry import IDENTITY
    from worker.visibility import start_options

    visibility = start_options(settings, area="sync", resource_id=sync_id,
                               summary=f"ScaiKey identity sweep {sync_id}"
                               + (f" of partner {partner_id}" if partner_id else " of every tenant"))
    try:
        await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
            SWEEP_WORKFLOW, SweepInput(sync_id=sync_id, partner_id=partner_id, reason=reason,
                                       heartbeat_timeout_seconds=settings.identity_sync_heartbeat_seconds),
            id=sweep_workflow_id(settings, sync_id), task_queue=settings.task_queue(IDENTITY),
            rpc_timeout=rpc_timeout, **visibility,
        ), action="identity_sync.start_sweep")
    except WorkflowAlreadyStartedError:  # a re-dispatch of a sweep that is already running
        pass


# --------------------------------------------------------------------------------------------- visibility
def is_super(ctx: RequestContext) -> bool:
    return ctx.principal.is_super_admin


def is_partner_admin(ctx: RequestContext) -> bool:
    return ctx.principal.is_partner_admin


async def visible_tenant_ids(conn: asyncpg.Connection, ctx: RequestContext) -> list[str] | None:
    """None = every tenant."""
    if is_super(ctx):
        return None
    if is_partner_admin(ctx) and ctx.partner_id:
        rows, _ = await directory_repo.list_tenants(conn, partner_id=ctx.partner_id, tenant_ids=None, status=None,
                                          limit=10_000, offset=0)
        return sorted({r["id"] for r in rows} | {ctx.tenant_id})
    return [ctx.tenant_id]


# --------------------------------------------------------------------------------------------- sync
async def trigger_sync(db: Database, temporal: Any, settings: Settings, ctx: RequestContext, *,
                       tenant_id: str | None, partner_id: str | None, tenants: Any) -> dict[str, Any]:
    """POST /v1/identity/sync. A tenant -> that tenant's entity; otherwise a sweep narrowed to what the caller
    administers (super admin: everything or ``partner_id``; partner admin: its partner; others: own tenant)."""
    if temporal is None:
        raise AppError("service_unavailable", "the workflow engine is unavailable; retry shortly")
    sync_id = new_id("sync")
    who = ctx.principal.identity_id
    if tenant_id is None and partner_id is None and not is_partner_admin(ctx):
        tenant_id = ctx.tenant_id
    if tenant_id is not None:
        if tenant_id != ctx.tenant_id:
            await tenants.resolve(ctx.principal, tenant_id, None)  # 403/404 exactly as tenant switching
        async with db.raw() as conn:
            partner = await directory_repo.tenant_partner(conn, tenant_id)
            row = await runs_repo.insert_run(conn, sync_id=sync_id, tenant_id=tenant_id, partner_id=partner,
                                        trigger="manual", reason="api", requested_by=who)
        await _start(start_tenant_sync(temporal, settings, tenant_id, sync_id, reason="api"))
        return {"sync_id": sync_id, "status": row["status"], "started_at": iso(row["created_at"]),
                "tenant_id": tenant_id}
    if not is_super(ctx):
        if partner_id is not None and partner_id != ctx.partner_id:
            raise AppError("access_denied", "that partner is outside your administration",
                           {"partner_id": partner_id})
        partner_id = ctx.partner_id
    async with db.raw() as conn:
        row = await runs_repo.insert_run(conn, sync_id=sync_id, tenant_id=runs_repo.SWEEP_TENANT, partner_id=partner_id,
                                    trigger="manual", reason="api", requested_by=who)
    await _start(start_sweep(temporal, settings, sync_id, partner_id=partner_id, reason="api"))
    return {"sync_id": sync_id, "status": row["status"], "started_at": iso(row["created_at"]),
            "partner_id": partner_id}


async def _start(coro: Any) -> None:
    """The run row is committed before this: if Temporal cannot take the request now (503), the row stays
    ``pending`` and the requeue schedule (worker/schedules.py) dispatches it once Temporal is back."""
    try:
        await coro
    except AppError:
        raise
    except Exception as exc:
        log.warning("could not start identity sync workflow", extra={"error": str(exc)})
        raise AppError("service_unavailable", "the workflow engine is unavailable; retry shortly") from None


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else (value or {})


def run_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "sync_id": row["sync_id"], "tenant_id": row["tenant_id"], "partner_id": row["partner_id"],
        "status": row["status"], "trigger": row["trigger"], "reason": row["reason"],
        "requested_by": row["requested_by"], "stats": _json(row["stats"]), "error": row["error"],
        "created_at": iso(row["created_at"]), "started_at": iso(row["started_at"] or row["created_at"]),
        "finished_at": iso(row["finished_at"]),
    }


def _overall(rows: list[dict[str, Any]], sweep: dict[str, Any] | None) -> str:
    statuses = [r["status"] for r in rows] + ([sweep["status"]] if sweep else [])
    if any(s in ("pending", "running") for s in statuses):
        return "running" if any(s != "pending" for s in statuses) else "pending"
    if any(s == "failed" for s in statuses):
        return "failed"
    if statuses and all(s == "skipped" for s in statuses):
        return "skipped"
    return "succeeded"


def _sum_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if len(rows) == 1:
        return dict(rows[0]["stats"])
    total: dict[str, Any] = {}
    for r in rows:
        for k, v in r["stats"].items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            total[k] = round(total.get(k, 0) + v, 3)
    methods = {r["stats"].get("users_method") for r in rows if r["stats"].get("users_method")}
    total["users_method"] = methods.pop() if len(methods) == 1 else ("mixed" if methods else None)
    total["warnings"] = [f"{r['tenant_id']}: {w}" for r in rows for w in r["stats"].get("warnings", [])]
    return total


async def get_sync(db: Database, ctx: RequestContext, sync_id: str) -> dict[str, Any]:
    async with db.raw() as conn:
        rows = await runs_repo.runs_for(conn, sync_id)
        visible = await visible_tenant_ids(conn, ctx)
    views = [run_view(r) for r in rows]
    sweep = next((v for v in views if v["tenant_id"] == runs_repo.SWEEP_TENANT), None)
    tenants = [v for v in views if v["tenant_id"] != runs_repo.SWEEP_TENANT
               and (visible is None or v["tenant_id"] in visible)]
    if sweep is not None and not (is_super(ctx) or (sweep["partner_id"] and sweep["partner_id"] == ctx.partner_id)
                                  or sweep["requested_by"] == ctx.principal.identity_id):
        sweep = None
    if not tenants and sweep is None:
        raise AppError("sync_not_found", f"sync '{sync_id}' does not exist", {"sync_id": sync_id})
    head = sweep or tenants[0]
    started = min((v["started_at"] for v in [*tenants, *([sweep] if sweep else [])] if v["started_at"]),
                  default=None)
    finished = [v["finished_at"] for v in tenants] + ([sweep["finished_at"]] if sweep else [])
    status = _overall(tenants, sweep)
    return {
        "sync_id": sync_id, "status": status, "trigger": head["trigger"], "requested_by": head["requested_by"],
        "tenant_id": None if sweep else head["tenant_id"], "partner_id": head["partner_id"],
        "started_at": started,
        "finished_at": None if status in ("pending", "running") or None in finished else max(finished),
        "error": "; ".join(f"{v['tenant_id']}: {v['error']}" for v in tenants if v["error"])
                 or (sweep["error"] if sweep else None) or None,
        "stats": _sum_stats(tenants) if tenants else {},
        "tenants": tenants,
    }


async def sync_history(db: Database, ctx: RequestContext, *, tenant_id: str | None, page: int,
                       page_size: int) -> dict[str, Any]:
    async with db.raw() as conn:
        visible = await visible_tenant_ids(conn, ctx)
        if tenant_id is not None:
            if visible is not None and tenant_id not in visible:
                raise AppError("access_denied", "that tenant is outside your administration",
                               {"tenant_id": tenant_id})
            visible = [tenant_id]
        rows, total = await runs_repo.history(conn, tenant_ids=visible, limit=page_size, offset=(page - 1) * page_size)
    return {"syncs": [run_view(r) for r in rows if r["tenant_id"] != runs_repo.SWEEP_TENANT], "total": total,
            "page": page, "page_size": page_size}


# --------------------------------------------------------------------------------------------- reads
def _page(page: int, page_size: int) -> tuple[int, int]:
    return page_size, (page - 1) * page_size


async def list_partners(db: Database, ctx: RequestContext, *, status: str | None, page: int,
                        page_size: int) -> dict[str, Any]:
    ids = None if is_super(ctx) else [ctx.partner_id] if ctx.partner_id else []
    limit, offset = _page(page, page_size)
    async with db.raw() as conn:
        rows, total = await directory_repo.list_partners(conn, partner_ids=ids, status=status, limit=limit, offset=offset)
    return {"partners": [{"id": r["id"], "name": r["name"], "slug": r["slug"], "region": r["region"],
                          "status": r["status"], "last_synced_at": iso(r["last_synced_at"])} for r in rows],
            "total": total, "page": page, "page_size": page_size}


async def list_tenants(db: Database, ctx: RequestContext, *, partner_id: str | None, status: str | None,
                       page: int, page_size: int) -> dict[str, Any]:
    tenant_ids: list[str] | None = None
    if not is_super(ctx):
        if is_partner_admin(ctx):
            if partner_id is not None and partner_id != ctx.partner_id:
                return {"tenants": [], "total": 0, "page": page, "page_size": page_size}
            partner_id = ctx.partner_id
        else:
            tenant_ids = [ctx.tenant_id]
    limit, offset = _page(page, page_size)
    async with db.raw() as conn:
        rows, total = await directory_repo.list_tenants(conn, partner_id=partner_id, tenant_ids=tenant_ids, status=status,
                                              limit=limit, offset=offset)
    return {"tenants": [{"id": r["id"], "partner_id": r["partner_id"], "name": r["name"], "slug": r["slug"],
                         "status": r["status"], "last_synced_at": iso(r["last_synced_at"])} for r in rows],
            "total": total, "page": page, "page_size": page_size}


def user_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"], "tenant_id": r["tenant_id"], "email": r["email"], "display_name": r["display_name"],
        "status": "DELETED" if r["deleted_at"] is not None else r["status"], "mfa_enabled": r["mfa_enabled"],
        "groups": list(r["groups"]), "roles": [r["admin_role"]] if r["admin_role"] else [],
        "admin_role_source": r["admin_role_source"], "last_synced_at": iso(r["last_synced_at"]),
    }


async def list_users(db: Database, tenant_id: str, *, status: str | None, q: str | None, page: int,
                     page_size: int) -> dict[str, Any]:
    limit, offset = _page(page, page_size)
    async with db.raw() as conn:
        rows, total = await cache_repo.list_users(conn, tenant_id, status=status, q=q, limit=limit, offset=offset)
    return {"users": [user_view(r) for r in rows], "total": total, "page": page, "page_size": page_size}


async def list_groups(db: Database, tenant_id: str, *, q: str | None, page: int, page_size: int) -> dict[str, Any]:
    limit, offset = _page(page, page_size)
    async with db.raw() as conn:
        rows, total = await cache_repo.list_groups(conn, tenant_id, q=q, limit=limit, offset=offset)
    return {"groups": [{"id": r["id"], "tenant_id": r["tenant_id"], "name": r["name"],
                        "group_type": r["group_type"], "description": r["description"],
                        "member_count": r["member_count"], "last_synced_at": iso(r["last_synced_at"])}
                       for r in rows], "total": total, "page": page, "page_size": page_size}


async def group_members(db: Database, tenant_id: str, group_id: str, *, page: int,
                        page_size: int) -> dict[str, Any]:
    limit, offset = _page(page, page_size)
    async with db.raw() as conn:
        group = await cache_repo.get_group(conn, tenant_id, group_id)
        if group is None or group["deleted_at"] is not None:
            raise AppError("identity_not_found", f"group '{group_id}' is not in the identity cache",
                           {"group_id": group_id})
        rows, total = await cache_repo.group_members(conn, tenant_id, group["id"], limit=limit, offset=offset)
    return {"members": [{"user_id": r["user_id"], "email": r["email"], "membership_type": r["membership_type"],
                         "added_at": iso(r["added_at"])} for r in rows],
            "total": total, "page": page, "page_size": page_size}


async def resolve(db: Database, tenant_id: str, identity_type: str, identity_id: str) -> dict[str, Any]:
    """``user`` by usr_ id, email or ``user:<email>``; ``group`` by grp_ id, name or ``group:<name>``."""
    ref = identity_id.split(":", 1)[1] if identity_id.startswith(("user:", "group:")) else identity_id
    async with db.raw() as conn:
        if identity_type == "user":
            row = await cache_repo.get_user(conn, tenant_id, ref)
            if row is not None:
                groups = await cache_repo.user_memberships(conn, tenant_id, row["id"])
                return {**user_view(row), "type": "user", "identity_id": f"user:{row['email']}",
                        "memberships": [{"group_id": g["id"], "name": g["name"], "identity_id": f"group:{g['name']}",
                                         "membership_type": g["membership_type"]} for g in groups]}
        elif identity_type == "group":
            g = await cache_repo.get_group(conn, tenant_id, ref)
            if g is not None and g["deleted_at"] is None:
                parents = await cache_repo.group_parents(conn, tenant_id, g["id"])
                _, total = await cache_repo.group_members(conn, tenant_id, g["id"], limit=1, offset=0)
                return {"id": g["id"], "type": "group", "identity_id": f"group:{g['name']}", "tenant_id": tenant_id,
                        "name": g["name"], "group_type": g["group_type"], "member_count": total,
                        "parent_groups": parents, "last_synced_at": iso(g["last_synced_at"])}
    raise AppError("identity_not_found", f"{identity_type} '{identity_id}' is not in the identity cache",
                   {"identity_type": identity_type, "identity_id": identity_id})


# --------------------------------------------------------------------------------------------- roles
def assignable_roles() -> dict[str, Any]:
    return {"roles": [{"name": r, "description": ROLE_DESCRIPTIONS[r]} for r in ROLES]}


async def get_roles(db: Database, tenant_id: str, user_id: str) -> dict[str, Any]:
    async with db.raw() as conn:
        row = await cache_repo.get_user(conn, tenant_id, user_id)
    if row is None or row["deleted_at"] is not None:
        raise AppError("identity_not_found", f"user '{user_id}' is not in the identity cache", {"user_id": user_id})
    return {"user_id": row["id"], "roles": [row["admin_role"]] if row["admin_role"] else [],
            "source": row["admin_role_source"]}


def _check_role_change(ctx: RequestContext, target: asyncpg.Record, roles: list[str]) -> str | None:
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise AppError("invalid_role", f"unknown role {bad[0]!r}; assignable: {', '.join(ROLES)}",
                       {"role": bad[0], "assignable": list(ROLES)})
    if len(set(roles)) > 1:
        raise AppError("invalid_role", "a user holds at most one admin role", {"roles": roles})
    p = ctx.principal
    if not (p.is_super_admin or "partner_admin" in p.roles):
        raise AppError("forbidden", "only a super_admin or partner_admin may change roles")
    new = roles[0] if roles else None
    current = target["admin_role"]
    if ("super_admin" in (new, current)) and not p.is_super_admin:
        raise AppError("forbidden", "only a super_admin may grant or remove super_admin")
    me = p.subject == target["id"] or p.identity_id.lower() == f"user:{target['email']}".lower()
    if me and new != current and ROLE_RANK.get(new or "", 0) > ROLE_RANK.get(current or "", 0):
        raise AppError("forbidden", "you may not elevate yourself")
    return new


async def put_roles(db: Database, ctx: RequestContext, tenant_id: str, user_id: str, roles: list[str],
                    audit: Any) -> dict[str, Any]:
    async with db.raw() as conn, conn.transaction():
        target = await cache_repo.get_user(conn, tenant_id, user_id)
        if target is None or target["deleted_at"] is not None:
            raise AppError("identity_not_found", f"user '{user_id}' is not in the identity cache",
                           {"user_id": user_id})
        new = _check_role_change(ctx, target, roles)
        await admins_repo.set_admin_role(conn, tenant_id, target["id"], new, "manual" if new else None)
        await audit.record(ctx, action="identity.roles.update", resource_type="identity_user",
                           resource_id=target["id"], extra={"roles": roles, "previous": target["admin_role"]},
                           conn=conn)
    return {"user_id": target["id"], "roles": [new] if new else [], "source": "manual" if new else None}
