"""Root credential rotation of a PostgreSQL engine (``POST /v1/dynamic/engines/{name}/rotate-root``;
docs/dynamic.md "Root rotation").

Order, so that no state exists in which only the database knows the password:

1. a new password is generated and stored **sealed** (envelope encryption, AAD bound to tenant, engine and
   rotation id) in a ``pending`` ``dynamic_root_rotations`` row, committed;
2. it is set at the source (``ALTER ROLE CURRENT_USER PASSWORD``), connecting with the current secret's
   credentials — or, when those are refused, with the new password (step 2 already happened);
3. the new secret version is written through the secrets write path as ``system:dynamic-engines`` (skipped
   when the current version already holds the new password: step 3 already happened), then the row becomes
   ``completed`` and the sealed password is erased.

An interrupted rotation (process killed between any two steps) is rolled forward by the ``lease-reconcile``
Schedule's activity (``resume_pending``), which repeats 2 and 3 idempotently; a rotation whose step 2 fails
(the source refuses) is marked ``failed`` and nothing changed.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from crypto import envelope
from repositories import dynamic as repo
from repositories.secrets import Owner
from services.dynamic import postgres
from services.dynamic.common import SYSTEM_ENGINES, describe_error, generate_password, iso
from services.dynamic.engines import _targets, fetch, read_root
from services.dynamic.postgres import TargetError

log = logging.getLogger("scaivault.dynamic")
COLS = "id, tenant_id, engine_id, status, sealed_password, new_version, error, requested_by, created_at, completed_at"


def _aad(tenant_id: str, engine_id: str, rotation_id: str) -> bytes:
    return envelope.aad_for("dynamic-root-rotation", tenant_id, engine_id, rotation_id)


def public(row: Any) -> dict[str, Any]:
    return {"rotation_id": row["id"], "status": row["status"], "new_version": row["new_version"],
            "error": row["error"], "created_at": iso(row["created_at"]), "completed_at": iso(row["completed_at"])}


async def rotate_root(state: Any, ctx: RequestContext, name: str) -> dict[str, Any]:
    from services.pki.common import partner_of, seal

    async with state.db.raw() as conn:
        engine = await fetch(conn, ctx.tenant_id, name)
    if engine["type"] != "database":
        raise AppError("invalid_request", "rotate-root is supported for database engines", {"name": name})
    path = repo.config_of(engine)["root_credentials_path"]
    await state.components["access"].check(ctx, path, "rotate")
    rid = new_id("drr")
    blob = await seal(state.components["keyring"], generate_password().encode(), _aad(ctx.tenant_id, engine["id"], rid),
                      tenant_id=ctx.tenant_id, partner_id=partner_of(engine["partner_id"]))
    async with state.db.raw() as conn, conn.transaction():
        pending = await conn.fetchrow(f"SELECT {COLS} FROM dynamic_root_rotations WHERE engine_id = $1"
                                      " AND status = 'pending' FOR UPDATE", engine["id"])
        if pending is None:
            await conn.execute("INSERT INTO dynamic_root_rotations (id, tenant_id, engine_id, sealed_password,"
                               " requested_by) VALUES ($1, $2, $3, $4, $5)", rid, ctx.tenant_id, engine["id"], blob,
                               ctx.principal.identity_id)
        else:  # an interrupted rotation: finish that one (its password may already be set at the source)
            rid = pending["id"]
        await state.components["audit"].record(ctx, action="dynamic_root_rotate", resource_type="dynamic_engine",
                                               resource_id=name, extra={"rotation_id": rid}, conn=conn)
    return await complete(state, ctx.tenant_id, rid)


async def complete(state: Any, tenant_id: str, rotation_id: str, *, ctx: RequestContext | None = None,
                   rotation: Any = None) -> dict[str, Any]:
    """Steps 2 and 3 (idempotent). Returns the rotation's public view. ``ctx``/``rotation``: the rotation
    scheduler's write (audited as its rotation, idempotent per cycle) instead of system:dynamic-engines."""
    from audit.recorder import system_context
    from services.pki.common import open_, partner_of

    async with state.db.raw() as conn:
        row = await conn.fetchrow(f"SELECT {COLS} FROM dynamic_root_rotations WHERE id = $1 AND tenant_id = $2",
                                  rotation_id, tenant_id)
        engine = None if row is None else await repo.engine_by_id(conn, tenant_id, row["engine_id"])
    if row is None or engine is None:
        raise AppError("not_found", "root rotation not found", {"rotation_id": rotation_id})
    if row["status"] != "pending":
        return public(row)
    cfg = repo.config_of(engine)
    path = cfg["root_credentials_path"]
    new_pw = (await open_(state.components["keyring"], row["sealed_password"], _aad(tenant_id, engine["id"], row["id"]),
                          tenant_id=tenant_id, partner_id=partner_of(engine["partner_id"]))).decode()
    current = await read_root(state, tenant_id, engine["partner_id"], path)
    user = str(current.get("username", ""))
    timeout = float(state.settings.dynamic_connect_timeout_seconds)
    secrets_ = (str(current.get("password", "")), new_pw)
    conn_t = None
    try:
        for pw in (str(current.get("password", "")), new_pw):
            try:
                conn_t = await postgres.connect(postgres.build_dsn(cfg["connection_url"], user, pw), timeout, secrets_)
                break
            except TargetError as exc:
                error = str(exc)
        if conn_t is None:
            return await _fail(state, row, f"the source refused both the current and the new password: {error}")
        try:
            await conn_t.execute(f"ALTER ROLE CURRENT_USER WITH PASSWORD '{new_pw}'")  # [A-Za-z0-9] only
        except Exception as exc:
            return await _fail(state, row, describe_error(exc, secrets_))
    finally:
        if conn_t is not None:
            await conn_t.close()
    ctx = ctx or system_context(SYSTEM_ENGINES, tenant_id, partner_id=engine["partner_id"], action="write",
                                path=path)
    version = None
    if current.get("password") != new_pw:
        _, body = await state.components["secrets"].write(
            ctx, Owner("tenant", tenant_id, partner_of(engine["partner_id"])), path,
            {"data": {**current, "password": new_pw}}, rotation=rotation)
        version = orjson.loads(body).get("version")
    async with state.db.raw() as conn, conn.transaction():
        done = await conn.fetchrow(
            "UPDATE dynamic_root_rotations SET status = 'completed', sealed_password = NULL, new_version = $2,"
            f" completed_at = now() WHERE id = $1 AND status = 'pending' RETURNING {COLS}", row["id"], version)
    await _targets(state).forget(engine["id"])
    log.info("engine root rotated", extra={"engine_id": engine["id"], "rotation_id": row["id"]})
    return public(done or row)


async def _fail(state: Any, row: Any, error: str) -> dict[str, Any]:
    async with state.db.raw() as conn:
        new = await conn.fetchrow(
            "UPDATE dynamic_root_rotations SET status = 'failed', sealed_password = NULL, error = $2,"
            f" completed_at = now() WHERE id = $1 AND status = 'pending' RETURNING {COLS}", row["id"], error[:500])
    raise AppError("invalid_config", f"root rotation failed: {error}",
                   {"rotation_id": row["id"], "status": (new or row)["status"]})


async def resume_pending(state: Any, older_than_seconds: int = 30) -> int:
    """Roll interrupted rotations forward (the lease-reconcile activity)."""
    async with state.db.raw() as conn:
        rows = await conn.fetch("SELECT id, tenant_id FROM dynamic_root_rotations WHERE status = 'pending'"
                                " AND created_at < now() - make_interval(secs => $1)", older_than_seconds)
    done = 0
    for r in rows:
        try:
            await complete(state, r["tenant_id"], r["id"])
            done += 1
        except Exception as exc:
            log.warning("root rotation resume failed", extra={"rotation_id": r["id"], "error": type(exc).__name__})
    return done


async def rotate_if_engine_root(state: Any, ctx: RequestContext, owner: Owner, path: str, *,
                                rotation: Any) -> int | None:
    """Called by the rotation scheduler's auto rotation (services/rotation/rotate.py) before it writes a generated
    value: when ``path`` is the root secret of one of the tenant's database engines, the rotation goes through
    the root-rotation path above (source first, sealed pending row, rolled forward if interrupted) and its
    version number is returned; otherwise None and the ordinary rotation proceeds."""
    from services.pki.common import partner_of, seal

    if owner.scope != "tenant" or owner.tenant_id is None:
        return None
    tenant_id = owner.tenant_id
    async with state.db.raw() as conn:
        engine = await conn.fetchrow(
            "SELECT id, partner_id FROM dynamic_engines WHERE tenant_id = $1 AND type = 'database'"
            " AND config->>'root_credentials_path' = $2 ORDER BY id LIMIT 1", tenant_id, path)
    if engine is None:
        return None
    rid = new_id("drr")
    blob = await seal(state.components["keyring"], generate_password().encode(), _aad(tenant_id, engine["id"], rid),
                      tenant_id=tenant_id, partner_id=partner_of(engine["partner_id"]))
    async with state.db.raw() as conn, conn.transaction():
        pending = await conn.fetchrow("SELECT id FROM dynamic_root_rotations WHERE engine_id = $1"
                                      " AND status = 'pending' FOR UPDATE", engine["id"])
        if pending is None:
            await conn.execute("INSERT INTO dynamic_root_rotations (id, tenant_id, engine_id, sealed_password,"
                               " requested_by) VALUES ($1, $2, $3, $4, $5)", rid, tenant_id, engine["id"], blob,
                               ctx.principal.identity_id)
        else:
            rid = pending["id"]
    out = await complete(state, tenant_id, rid, ctx=ctx, rotation=rotation)
    return out["new_version"] if out["new_version"] is not None else None
