"""Dynamic roles (lifecycle.md §4.3; docs/dynamic.md "Roles"): the recipe for one kind of credential.

Database roles: ``creation_statements`` (required; each placeholder known, ``{{name}}`` in at least one),
``revocation_statements`` (default: postgres.DEFAULT_REVOCATION; ``{{name}}`` required when given),
``renew_statements`` (optional; ``{{name}}``/``{{expiration}}``), ``default_ttl``, ``max_ttl`` (at most the
engine's). AWS roles: ``credential_type`` ``iam_user`` (``policy_document`` and/or ``policy_arns``) or
``assumed_role`` (``role_arn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories import dynamic as repo
from services.dynamic import aws, postgres
from services.dynamic.common import check_name, invalid_config, iso, role_not_found, ttl, validation
from services.dynamic.engines import fetch as fetch_engine

DB_FIELDS = frozenset({"name", "creation_statements", "revocation_statements", "renew_statements", "default_ttl",
                       "max_ttl"})
AWS_FIELDS = frozenset({"name", "credential_type", "policy_document", "policy_arns", "role_arn", "default_ttl",
                        "max_ttl"})
MAX_STATEMENTS = 50
MAX_STATEMENT_LEN = 8192


def _statements(body: Mapping[str, Any], key: str, allowed: frozenset[str], *, required: bool,
                need_name: bool) -> list[str]:
    v = body.get(key)
    if v is None or v == []:
        if required:
            raise AppError("invalid_role", f"{key} is required (SQL with {{{{name}}}})", {"field": key})
        return []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or len(v) > MAX_STATEMENTS or not all(
            isinstance(s, str) and s.strip() and len(s) <= MAX_STATEMENT_LEN for s in v):
        raise AppError("invalid_role", f"{key} must be a list of at most {MAX_STATEMENTS} non-empty SQL statements",
                       {"field": key})
    found: set[str] = set()
    for s in v:
        names = postgres.placeholders(s)
        unknown = names - allowed
        if unknown:
            raise AppError("invalid_role", f"{key} uses unknown placeholder(s) {sorted(unknown)}; allowed: "
                           f"{sorted(allowed)}", {"field": key, "placeholders": sorted(unknown)})
        found |= names
    if need_name and not found & {"name", "username"}:
        raise AppError("invalid_role", f"{key} must reference {{{{name}}}} (the generated user)", {"field": key})
    return list(v)


def validate(engine: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None,
                                                                          str | None]:
    fields = DB_FIELDS if engine["type"] == "database" else AWS_FIELDS
    unknown = sorted(str(k) for k in body if k not in fields)
    if unknown:
        raise validation(unknown[0], f"unknown field(s) {unknown}")
    name = check_name(body.get("name"))
    cfg: dict[str, Any]
    if engine["type"] == "database":
        cfg = {
            "creation_statements": _statements(body, "creation_statements", postgres.CREATE_PLACEHOLDERS,
                                               required=True, need_name=True),
            "revocation_statements": _statements(body, "revocation_statements", postgres.REVOKE_PLACEHOLDERS,
                                                 required=False, need_name=True),
            "renew_statements": _statements(body, "renew_statements", frozenset({"name", "username", "expiration"}),
                                            required=False, need_name=True),
        }
    else:
        cfg = aws.check_role(dict(body))
    engine_max = int(engine["max_ttl_seconds"])
    default_ttl = max_ttl = None
    max_s = engine_max
    if body.get("max_ttl") is not None:
        max_ttl, max_s = ttl(body["max_ttl"], "max_ttl")
        if max_s > engine_max:
            raise validation("max_ttl", f"max_ttl must not exceed the engine's max_ttl ({engine['max_ttl']})",
                             engine_max_ttl=engine["max_ttl"])
    if body.get("default_ttl") is not None:
        default_ttl, default_s = ttl(body["default_ttl"], "default_ttl")
        if default_s > max_s:
            raise validation("default_ttl", "default_ttl must not exceed max_ttl")
    return name, cfg, default_ttl, max_ttl


def public(row: Mapping[str, Any], engine_name: str) -> dict[str, Any]:
    cfg = repo.config_of(row)  # type: ignore[arg-type]
    if "revocation_statements" in cfg and not cfg["revocation_statements"]:
        cfg = {**cfg, "revocation_statements_default": postgres.DEFAULT_REVOCATION}
    return {"id": row["id"], "name": row["name"], "engine": engine_name, **cfg,
            "default_ttl": row["default_ttl"], "max_ttl": row["max_ttl"], "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]), "created_by": row["created_by"]}


async def fetch(conn: asyncpg.Connection, tenant_id: str, engine: Mapping[str, Any], name: str, *,
                for_update: bool = False) -> asyncpg.Record:
    row = await repo.get_role(conn, tenant_id, engine["id"], name, for_update=for_update)
    if row is None:
        raise role_not_found(name, engine["name"])
    return row


async def _audit(state: Any, ctx: RequestContext, conn: asyncpg.Connection, action: str, engine: str, name: str,
                 extra: dict[str, Any] | None = None) -> None:
    await state.components["audit"].record(ctx, action=action, resource_type="dynamic_role",
                                           resource_id=f"{engine}/{name}", extra=extra or {}, conn=conn)


async def create(state: Any, ctx: RequestContext, engine_name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    async with state.db.raw() as conn, conn.transaction():
        engine = await fetch_engine(conn, ctx.tenant_id, engine_name)
        name, cfg, default_ttl, max_ttl = validate(engine, body)
        try:
            async with conn.transaction():
                row = await repo.insert_role(conn, id=new_id("dyr"), tenant_id=ctx.tenant_id, engine_id=engine["id"],
                                             name=name, config=cfg, default_ttl=default_ttl, max_ttl=max_ttl,
                                             created_by=ctx.principal.identity_id)
        except asyncpg.UniqueViolationError:
            raise AppError("conflict", f"engine '{engine_name}' already has a role named '{name}'",
                           {"field": "name", "name": name}) from None
        await _audit(state, ctx, conn, "dynamic_role_create", engine_name, name)
    return public(row, engine_name)


async def list_roles(state: Any, ctx: RequestContext, engine_name: str, *, after: str | None,
                     limit: int) -> tuple[list[dict[str, Any]], str | None]:
    async with state.db.raw() as conn:
        engine = await fetch_engine(conn, ctx.tenant_id, engine_name)
        rows = await repo.list_roles(conn, ctx.tenant_id, engine["id"], after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r, engine_name) for r in rows], (rows[-1]["id"] if more else None)


async def get(state: Any, ctx: RequestContext, engine_name: str, name: str) -> dict[str, Any]:
    async with state.db.raw() as conn:
        engine = await fetch_engine(conn, ctx.tenant_id, engine_name)
        return public(await fetch(conn, ctx.tenant_id, engine, name), engine_name)


async def patch(state: Any, ctx: RequestContext, engine_name: str, name: str,
                body: Mapping[str, Any]) -> dict[str, Any]:
    async with state.db.raw() as conn, conn.transaction():
        engine = await fetch_engine(conn, ctx.tenant_id, engine_name)
        row = await fetch(conn, ctx.tenant_id, engine, name, for_update=True)
        if "name" in body and body["name"] != name:
            raise validation("name", "a role cannot be renamed")
        doc = {"name": name, **repo.config_of(row), "default_ttl": row["default_ttl"], "max_ttl": row["max_ttl"],
               **body}
        doc.pop("revocation_statements_default", None)
        _, cfg, default_ttl, max_ttl = validate(engine, doc)
        new = await repo.update_role(conn, ctx.tenant_id, row["id"], config=cfg, default_ttl=default_ttl,
                                     max_ttl=max_ttl)
        await _audit(state, ctx, conn, "dynamic_role_update", engine_name, name,
                     {"fields": sorted(str(k) for k in body)})
    return public(new, engine_name)


async def delete(state: Any, ctx: RequestContext, engine_name: str, name: str) -> None:
    """Leases already issued keep their own revocation (the lease row names the role; the statements used for
    revocation are read when it runs, and a deleted role falls back to the default revocation)."""
    async with state.db.raw() as conn, conn.transaction():
        engine = await fetch_engine(conn, ctx.tenant_id, engine_name)
        row = await fetch(conn, ctx.tenant_id, engine, name, for_update=True)
        await repo.delete_role(conn, ctx.tenant_id, row["id"])
        await _audit(state, ctx, conn, "dynamic_role_delete", engine_name, name)


_ = invalid_config  # re-exported for callers validating role bodies
