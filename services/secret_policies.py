"""Value-generation (secret) policies (spec core.md §10.7): CRUD, preview, server-side generation.

Decisions (docs/policies.md "API"):
- ``static`` field values are write-only: responses and previews show ``"********"``. Sending that placeholder
  back (a PUT echoing a GET) keeps the stored value of the same-named static field.
- ``preview`` generates a sample in a worker thread (RSA keys take up to ~1 s) and never stores it.
- ``generate`` needs ``secrets:write`` and the ``write`` permission on the target path, generates, and hands the
  values to the secrets feature through :func:`secret_writer` (``services.secrets.writes.write_generated``).
  Until that module exists it answers ``503 service_unavailable`` (details.reason ``secret_writes_unavailable``).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories import secret_policies as repo
from secretgen import SecretPolicySpec, generate, validate_secret_policy

REDACTED = "********"
SECRET_TYPES = ("kv", "json", "certificate", "ssh_key", "api_key")
_DEFAULT_TYPE = {"ssh_key": "ssh_key", "api_key": "api_key", "password": "kv", "oauth_client": "json"}
_PATCH_KEYS = frozenset({"name", "policy_type", "description", "fields", "is_active"})

WriteGenerated = Callable[..., Awaitable[dict[str, Any]]]


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _redact_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(fields)
    for f in out:
        if isinstance(f, dict) and f.get("generator") == "static" and isinstance(f.get("config"), dict):
            if "value" in f["config"]:
                f["config"]["value"] = REDACTED
    return out


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "policy_type": row["policy_type"],
            "description": row["description"], "fields": _redact_fields(repo.fields_of(row)),  # type: ignore[arg-type]
            "is_active": row["is_active"], "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]), "created_by": row["created_by"]}


def _restore_static(new_fields: object, old_fields: list[dict[str, Any]]) -> object:
    """Replace the redaction placeholder by the stored value of the same-named static field."""
    if not isinstance(new_fields, list):
        return new_fields
    old = {f.get("name"): f for f in old_fields if f.get("generator") == "static"}
    out = copy.deepcopy(new_fields)
    for i, f in enumerate(out):
        if not (isinstance(f, dict) and f.get("generator") == "static" and isinstance(f.get("config"), dict)):
            continue
        if f["config"].get("value") == REDACTED:
            prev = old.get(f.get("name"))
            if prev is None:
                raise AppError("invalid_config", f"fields[{i}].config.value: send the value, not the placeholder",
                               {"field": f"fields[{i}].config.value"})
            f["config"]["value"] = prev["config"]["value"]
    return out


def _spec(doc: Mapping[str, Any]) -> tuple[SecretPolicySpec, list[dict[str, Any]]]:
    spec = validate_secret_policy(doc)
    return spec, [dict(f) for f in doc["fields"]]


def _not_found(policy_id: str) -> AppError:
    return AppError("secret_policy_not_found", f"secret policy '{policy_id}' not found", {"id": policy_id})


def _duplicate(name: str) -> AppError:
    return AppError("conflict", f"a secret policy named '{name}' already exists", {"field": "name", "name": name})


async def fetch(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, *,
                for_update: bool = False) -> asyncpg.Record:
    row = await repo.get(conn, ctx.tenant_id, policy_id, for_update=for_update)
    if row is None:
        raise _not_found(policy_id)
    return row


async def _audit(audit: Any, ctx: RequestContext, conn: asyncpg.Connection, action: str, resource_id: str,
                 extra: dict[str, Any]) -> None:
    await audit.record(ctx, action=action, resource_type="secret_policy", resource_id=resource_id, extra=extra,
                       conn=conn)


async def list_policies(conn: asyncpg.Connection, ctx: RequestContext, *, include_inactive: bool,
                        after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_page(conn, ctx.tenant_id, include_inactive=include_inactive, after=after,
                                limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], audit: Any) -> dict[str, Any]:
    spec, fields = _spec(body)
    try:
        async with conn.transaction():
            row = await repo.insert(conn, id=new_id("sp"), tenant_id=ctx.tenant_id, name=spec.name,
                                    policy_type=spec.policy_type, description=spec.description, fields=fields,
                                    is_active=spec.is_active, created_by=ctx.principal.identity_id)
    except asyncpg.UniqueViolationError:
        raise _duplicate(spec.name) from None
    ctx.describe("secret_policy_create", resource_type="secret_policy", resource_id=row["id"])
    await _audit(audit, ctx, conn, "secret_policy_create", row["id"], {"name": spec.name})
    return public(row)


async def _store(conn: asyncpg.Connection, ctx: RequestContext, row: asyncpg.Record, doc: dict[str, Any],
                 audit: Any) -> dict[str, Any]:
    doc["fields"] = _restore_static(doc.get("fields"), repo.fields_of(row))
    spec, fields = _spec(doc)
    try:
        async with conn.transaction():
            new = await repo.update(conn, ctx.tenant_id, row["id"], name=spec.name, policy_type=spec.policy_type,
                                    description=spec.description, fields=fields, is_active=spec.is_active)
    except asyncpg.UniqueViolationError:
        raise _duplicate(spec.name) from None
    await _audit(audit, ctx, conn, "secret_policy_update", row["id"], {"name": spec.name})
    return public(new)


async def replace(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                  audit: Any) -> dict[str, Any]:
    row = await fetch(conn, ctx, policy_id, for_update=True)
    doc = {k: v for k, v in body.items() if k != "created_by"}  # echoed GET bodies carry it; read-only
    doc.setdefault("is_active", row["is_active"])
    return await _store(conn, ctx, row, doc, audit)


async def patch(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                audit: Any) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in _PATCH_KEYS)
    if unknown:
        raise AppError("validation_error", f"unknown or read-only key(s) {unknown}", {"field": unknown[0]})
    row = await fetch(conn, ctx, policy_id, for_update=True)
    doc = {"name": row["name"], "policy_type": row["policy_type"], "description": row["description"],
           "fields": repo.fields_of(row), "is_active": row["is_active"], **body}
    return await _store(conn, ctx, row, doc, audit)


async def delete(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, audit: Any) -> None:
    row = await fetch(conn, ctx, policy_id, for_update=True)
    await repo.delete(conn, ctx.tenant_id, policy_id)
    await _audit(audit, ctx, conn, "secret_policy_delete", policy_id, {"name": row["name"]})


def spec_of(row: Mapping[str, Any]) -> SecretPolicySpec:
    return validate_secret_policy({"name": row["name"], "policy_type": row["policy_type"],
                                   "fields": repo.fields_of(row), "is_active": row["is_active"]})  # type: ignore[arg-type]


async def generate_values(spec: SecretPolicySpec) -> dict[str, str]:
    """Run the generators in a worker thread (key generation is CPU-bound)."""
    return await asyncio.to_thread(generate, spec)


async def preview(row: Mapping[str, Any]) -> dict[str, Any]:
    spec = spec_of(row)
    data = await generate_values(spec)
    for f in spec.fields:
        if f.generator == "static":
            data[f.name] = REDACTED
    return {"secret_policy_id": row["id"], "data": data, "stored": False,
            "generated_at": _iso(datetime.now(UTC))}


def default_secret_type(policy_type: str) -> str:
    return _DEFAULT_TYPE.get(policy_type, "json")


def secret_writer() -> WriteGenerated | None:
    """``services.secrets.writes.write_generated`` when the secrets feature is present, else None.

    Interface (the secrets feature implements it; it owns its transaction, audit entry and events)::

        async def write_generated(state: AppState, ctx: RequestContext, *, path: str, secret_type: str,
                                  data: dict[str, str], secret_policy_id: str) -> dict[str, Any]

    It writes ``data`` as the next version at ``path`` (creating the secret if needed, linking
    ``secret_policy_id``) and returns the secret's metadata **without** its values.
    """
    try:
        module = importlib.import_module("services.secrets.writes")
    except ModuleNotFoundError as exc:
        if exc.name == "services.secrets.writes":
            return None
        raise
    fn = getattr(module, "write_generated", None)
    return fn if callable(fn) else None
