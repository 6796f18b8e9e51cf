"""Leases (lifecycle.md §4.4; docs/dynamic.md "Leases"): issue, renew, revoke, revoke by prefix, list.

Issuing is crash-safe in three steps: (1) the lease row is committed as ``pending`` with its expiry, (2) the
credential is created at the target (one transaction there: a failure leaves no role behind), (3) the row
becomes ``active`` with its audit record, ``lease.created`` event and metric. If the process dies between (1)
and (3) the revoker still finds the row at its expiry and removes whatever step (2) created. The password (or
secret access key) exists only in the response: the row keeps the username (or access key id).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from api.context import RequestContext
from core import metrics
from core.errors import AppError
from core.ids import new_id
from repositories import dynamic as repo
from repositories.events import outbox
from services.dynamic import aws, batch, engines, postgres, revocation
from services.dynamic.common import (
    engine_not_found,
    generate_password,
    generate_username,
    iso,
    lease_not_found,
    now,
    role_not_found,
    ttl,
    validation,
)
from services.dynamic.postgres import TargetError
from services.dynamic.roles import fetch as fetch_role

LEASE_PREFIX = "lease_"
_BACKGROUND: set[asyncio.Task[Any]] = set()
ISSUE_FIELDS = frozenset({"ttl", "wait_until_usable"})


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    exp = row["expires_at"]
    return {"lease_id": row["id"], "engine": row["engine_name"], "role": row["role_name"],
            "username": row["username"], "status": row["status"], "created_at": iso(row["created_at"]),
            "expires_at": iso(exp), "max_expires_at": iso(row["max_expires_at"]),
            "ttl_seconds": max(0, int((exp - now()).total_seconds())) if row["status"] == "active" else 0,
            "renewable": row["status"] == "active" and exp < row["max_expires_at"],
            "renewed_at": iso(row["renewed_at"]), "revoked_at": iso(row["revoked_at"]),
            "revoke_reason": row["revoke_reason"], "revocation_attempts": row["attempts"],
            "next_attempt_at": iso(row["next_attempt_at"]), "last_error": row["last_error"],
            "created_by": row["created_by"]}


def _limits(engine: Mapping[str, Any], role: Mapping[str, Any]) -> tuple[int, int]:
    max_s = int(engine["max_ttl_seconds"])
    if role["max_ttl"]:
        max_s = min(max_s, ttl(role["max_ttl"], "max_ttl")[1])
    default_s = ttl(role["default_ttl"], "default_ttl")[1] if role["default_ttl"] else int(engine["default_ttl_seconds"])
    return min(default_s, max_s), max_s


def _targets(state: Any) -> engines.Targets:
    return engines._targets(state)


async def issue(state: Any, ctx: RequestContext, engine_name: str, role_name: str,
                body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in ISSUE_FIELDS)
    if unknown:
        raise validation(unknown[0], f"unknown field(s) {unknown}")
    async with state.db.raw() as conn:
        engine, role = await repo.engine_and_role(conn, ctx.tenant_id, engine_name, role_name)
    if engine is None:
        raise engine_not_found(engine_name)
    if role is None:
        raise role_not_found(role_name, engine_name)
    default_s, max_s = _limits(engine, role)
    want = default_s
    if body.get("ttl") is not None:
        want = ttl(body["ttl"], "ttl")[1]
        if want > max_s:
            raise validation("ttl", f"ttl exceeds the role's max_ttl ({max_s}s)", max_ttl_seconds=max_s)
    wait = body.get("wait_until_usable", False)
    if not isinstance(wait, bool):
        raise validation("wait_until_usable", "wait_until_usable must be true or false")
    handle = await _targets(state).handle(state, engine)
    cfg = repo.config_of(role)
    created = now()
    expires = created + timedelta(seconds=want)
    max_expires = created + timedelta(seconds=max_s)
    lease_id = new_id("lease")
    kind = "database" if engine["type"] == "database" else cfg.get("credential_type", "iam_user")
    username = generate_username(role_name, max_len=63 if kind == "database" else 64)
    grouped = batch.batcher(state)  # group commit of concurrent issues (services/dynamic/batch.py)
    if grouped is not None:
        await grouped.pending.submit(batch.Pending(
            id=lease_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, engine_id=engine["id"],
            engine_name=engine["name"], role_name=role_name, username=username,
            created_by=ctx.principal.identity_id, expires_at=expires, max_expires_at=max_expires))
    else:
        async with state.db.raw() as conn:
            await repo.insert_lease(conn, id=lease_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                                    engine_id=engine["id"], engine_name=engine["name"], role_name=role_name,
                                    username=username, created_by=ctx.principal.identity_id, expires_at=expires,
                                    max_expires_at=max_expires)
    data: dict[str, Any]
    external: str | None = None
    try:
        if kind == "database":
            assert handle.pool is not None
            password = generate_password()
            await postgres.create(handle.pool, cfg["creation_statements"], username, password, iso(expires) or "")
            data = {"username": username, "password": password}
        elif kind == "iam_user":
            assert handle.client is not None
            data = await handle.client.create_user(cfg, username)
            external = data["access_key_id"]
        else:
            assert handle.client is not None
            data = await handle.client.assume_role(cfg, username, want)
            external = "sts:" + data["access_key_id"]
    except Exception as exc:
        raise await _issue_failed(state, ctx, engine, role_name, lease_id, exc) from None
    audit_extra = {"engine": engine_name, "role": role_name, "username": username, "ttl_seconds": want}
    event_data = {"lease_id": lease_id, "engine": engine_name, "role": role_name, "username": username,
                  "expires_at": iso(expires), "max_expires_at": iso(max_expires)}
    if grouped is not None:  # one statement: active + audit entry + event, all or none, shared by the batch
        entry = state.components["audit"].build(ctx, action="dynamic_generate", resource_type="lease",
                                                resource_id=lease_id, extra=audit_extra)
        row = await grouped.activations.submit(batch.Activation(ctx, lease_id, external, entry.as_row(), event_data))
    else:
        async with state.db.raw() as conn, conn.transaction():
            row = await repo.activate_lease(conn, lease_id, external)
            if row is not None:
                await state.components["audit"].record(ctx, action="dynamic_generate", resource_type="lease",
                                                       resource_id=lease_id, conn=conn, extra=audit_extra)
                await outbox.emit(conn, event_type="lease.created", tenant_id=ctx.tenant_id,
                                  partner_id=ctx.partner_id, identity_id=ctx.principal.identity_id, data=event_data)
    if row is None:  # the revoker took the row (a TTL shorter than the creation took): it removes the role
        raise AppError("service_unavailable", "the lease expired while it was being created; retry",
                       {"lease_id": lease_id})
    metrics.LEASES_GENERATED.labels(engine=engine_name, role=role_name).inc()
    wake_at = engine["revoker_wake_at"]
    if wake_at is None or expires < wake_at:
        # not awaited: a slow or unreachable Temporal must not delay the credential (the lease row is what counts;
        # the lease-reconcile Schedule starts the revoker if this signal is lost)
        task = asyncio.get_running_loop().create_task(
            revocation.wake(state, ctx.tenant_id, engine["id"], reason="lease_created"))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
    out = public(row)
    out.update({"data": data, "ttl": f"{want}s", "ttl_seconds": want})
    if wait and engine["type"] == "aws" and handle.client is not None:
        out["usable"] = await handle.client.wait_usable(data["access_key_id"], data["secret_access_key"],
                                                        data.get("session_token"),
                                                        float(state.settings.dynamic_aws_wait_seconds))
    return out


async def _issue_failed(state: Any, ctx: RequestContext, engine: Mapping[str, Any], role_name: str, lease_id: str,
                        exc: BaseException) -> AppError:
    """The error for a failed step (2) of issuing, after making sure no credential is left at the target.

    * The target refused the statements (or AWS refused a call): the target transaction rolled back (AWS: the
      user was deleted again), so the pending row is deleted; ``400 invalid_config`` with the target's message.
    * The target could not be reached before anything was sent: the pending row is deleted; ``503
      service_unavailable`` (``details.dependency: "target"``, ``Retry-After``) — retryable, nothing is wrong with
      the request or the engine's configuration.
    * The connection failed after the statements were sent (or an AWS call failed mid-way): whether they
      committed is unknown, so the row is kept and handed to the revoker (``revoking``, reason ``issue_failed``),
      which confirms at the target that the role or user is gone (dropping it if it was created) under the
      engine's rate limit, audited like every revocation; ``503 service_unavailable`` naming the lease.
    """
    unavailable = postgres.is_unavailable(exc) if isinstance(exc, TargetError) else False
    handed_over = unavailable and getattr(exc, "sent", True)
    async with state.db.raw() as conn:
        if handed_over:
            await repo.abandon_pending(conn, lease_id, by=ctx.principal.identity_id)
        else:
            await repo.delete_lease(conn, lease_id)
    if handed_over:
        task = asyncio.get_running_loop().create_task(
            revocation.wake(state, ctx.tenant_id, engine["id"], reason="issue_failed"))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
    if isinstance(exc, AppError):
        return exc
    msg = str(exc) if isinstance(exc, TargetError) else type(exc).__name__
    details: dict[str, Any] = {"engine": engine["name"], "role": role_name, "reason": msg}
    if unavailable:
        details["dependency"] = "target"
        if handed_over:
            details.update({"lease_id": lease_id, "lease_status": "revoking"})
        return AppError("service_unavailable", f"the target of engine '{engine['name']}' is unavailable ({msg});"
                        " no credential was issued, retry shortly", details, headers={"Retry-After": "2"})
    return AppError("invalid_config", f"the target refused the credential: {msg}", details)


async def fetch(conn: Any, tenant_id: str, lease_id: str, *, for_update: bool = False) -> Any:
    if not isinstance(lease_id, str) or not lease_id.startswith(LEASE_PREFIX) or len(lease_id) > 64:
        raise lease_not_found(lease_id)
    row = await repo.get_lease(conn, tenant_id, lease_id, for_update=for_update)
    if row is None:
        raise lease_not_found(lease_id)
    return row


async def get(state: Any, ctx: RequestContext, lease_id: str) -> dict[str, Any]:
    async with state.db.raw() as conn:
        return public(await fetch(conn, ctx.tenant_id, lease_id))


async def list_leases(state: Any, ctx: RequestContext, *, engine: str | None, role: str | None, status: str | None,
                      after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    if status is not None and status not in (*repo.LIVE, "revoked"):
        raise validation("status", f"status must be one of {[*repo.LIVE, 'revoked']}")
    async with state.db.raw() as conn:
        rows = await repo.list_leases(conn, ctx.tenant_id, engine=engine, role=role, status=status, after=after,
                                      limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


async def renew(state: Any, ctx: RequestContext, lease_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """New expiry = now + increment (default: the role's default TTL); beyond ``max_expires_at`` is refused."""
    unknown = sorted(str(k) for k in body if k != "increment")
    if unknown:
        raise validation(unknown[0], f"unknown field(s) {unknown}")
    async with state.db.raw() as conn, conn.transaction():
        row = await fetch(conn, ctx.tenant_id, lease_id, for_update=True)
        if row["status"] != "active":
            raise AppError("invalid_request", f"lease '{lease_id}' is {row['status']} and cannot be renewed",
                           {"lease_id": lease_id, "status": row["status"]})
        engine = await repo.engine_by_id(conn, ctx.tenant_id, row["engine_id"])
        role = await repo.get_role(conn, ctx.tenant_id, row["engine_id"], row["role_name"])
        if engine is None or role is None:
            raise AppError("invalid_request", "the lease's engine or role no longer exists; it cannot be renewed",
                           {"lease_id": lease_id})
        default_s, _ = _limits(engine, role)
        inc = ttl(body["increment"], "increment")[1] if body.get("increment") is not None else default_s
        new_exp = now() + timedelta(seconds=inc)
        if new_exp > row["max_expires_at"] + timedelta(seconds=1):
            raise validation("increment", f"renewing by {inc}s would pass the lease's max_ttl (it ends at "
                             f"{iso(row['max_expires_at'])})", max_expires_at=iso(row["max_expires_at"]))
        stmts = repo.config_of(role).get("renew_statements") or []
        if stmts:
            handle = await _targets(state).handle(state, engine)
            if handle.pool is not None:
                try:
                    await postgres.renew(handle.pool, stmts, row["username"], iso(new_exp) or "")
                except TargetError as exc:
                    raise AppError("service_unavailable", f"the target refused the renewal: {exc}",
                                   {"lease_id": lease_id}) from None
        new = await repo.renew(conn, lease_id, new_exp)
        await state.components["audit"].record(
            ctx, action="dynamic_renew", resource_type="lease", resource_id=lease_id, conn=conn,
            extra={"engine": row["engine_name"], "role": row["role_name"], "increment_seconds": inc})
        await outbox.emit(conn, event_type="lease.renewed", tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                          identity_id=ctx.principal.identity_id,
                          data={"lease_id": lease_id, "engine": row["engine_name"], "role": row["role_name"],
                                "expires_at": iso(new_exp), "max_expires_at": iso(row["max_expires_at"])})
    return public(new)


async def revoke(state: Any, ctx: RequestContext, lease_id: str) -> tuple[int, dict[str, Any]]:
    """Revoke now through the same path as the revoker (confirmed at the target before ``revoked``). 200 when
    confirmed; 202 with ``status: revoking`` and ``last_error`` when the target failed (or revocation of the
    engine is paused): the revoker keeps retrying. Also the way to retry a ``revocation_failed`` lease."""
    async with state.db.raw() as conn, conn.transaction():
        row = await fetch(conn, ctx.tenant_id, lease_id, for_update=True)
        if row["status"] == "revoked":
            return 200, public(row)
        await repo.request_revoke(conn, [lease_id], by=ctx.principal.identity_id)
        await state.components["audit"].record(
            ctx, action="dynamic_revoke", resource_type="lease", resource_id=lease_id, conn=conn,
            extra={"engine": row["engine_name"], "role": row["role_name"], "username": row["username"],
                   "phase": "requested"})
        engine = await repo.engine_by_id(conn, ctx.tenant_id, row["engine_id"])
    if engine is not None and not engine["revocation_paused"]:
        await revoke_now(state, engine, [lease_id])
    async with state.db.raw() as conn:
        row = await fetch(conn, ctx.tenant_id, lease_id)
    if row["status"] != "revoked" and engine is not None:
        await revocation.wake(state, ctx.tenant_id, engine["id"], reason="revoke_retry")
    return (200 if row["status"] == "revoked" else 202), public(row)


async def revoke_now(state: Any, engine: Mapping[str, Any], lease_ids: list[str]) -> tuple[int, int]:
    async with state.db.raw() as conn:
        rows = [await repo.lease_by_id(conn, lid) for lid in lease_ids]
        leases = {r["id"]: r for r in rows if r is not None and r["status"] != "revoked"}
        roles = await revocation._role_statements(conn, engine, {r["role_name"] for r in leases.values()})
    if not leases:
        return 0, 0
    try:
        handle = await _targets(state).handle(state, engine)
        res = await revocation.at_target(handle, engine, roles, list(leases.values()))
    except (TargetError, AppError) as exc:
        msg = exc.message if isinstance(exc, AppError) else str(exc)
        res = {lid: msg for lid in leases}
    return await revocation.record(state, engine, res, leases, workflow_id_=ctx_request_id())


def ctx_request_id() -> str | None:
    from core.logging import request_id_var

    return request_id_var.get()


async def revoke_prefix(state: Any, ctx: RequestContext, body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"prefix": "<engine>"}`` or ``"<engine>/<role>"``: queue every live lease below it; the engine's
    revoker works through them under its rate limit. 202 with the count."""
    prefix = body.get("prefix")
    unknown = sorted(str(k) for k in body if k != "prefix")
    if unknown:
        raise validation(unknown[0], f"unknown field(s) {unknown}")
    if not isinstance(prefix, str) or not prefix.strip("/") or prefix.count("/") > 1 or len(prefix) > 200:
        raise validation("prefix", "prefix must be '<engine>' or '<engine>/<role>'")
    engine_name, _, role_name = prefix.strip("/").partition("/")
    async with state.db.raw() as conn, conn.transaction():
        engine = await engines.fetch(conn, ctx.tenant_id, engine_name)
        if role_name:
            await fetch_role(conn, ctx.tenant_id, engine, role_name)
        ids = await repo.live_ids_with_prefix(conn, ctx.tenant_id, engine_name, role_name or None)
        if ids:
            await repo.request_revoke(conn, ids, by=ctx.principal.identity_id)
        await state.components["audit"].record(
            ctx, action="dynamic_revoke", resource_type="lease", resource_id=prefix, conn=conn,
            extra={"prefix": prefix, "count": len(ids), "phase": "requested"})
    if ids:
        await revocation.wake(state, ctx.tenant_id, engine["id"], strict=True, reason="revoke_prefix")
    return {"prefix": prefix, "queued": len(ids), "lease_ids": ids[:1000]}


_unused = (datetime, time, aws)
