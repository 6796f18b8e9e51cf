"""Access-policy rules (spec core.md §7, §10.4): CRUD, bindings, the dry run.

Mutating functions run on an asyncpg connection inside the request's transaction, write the audit entry and the
outbox event on it, and return a :class:`Change` naming what the caller must invalidate *after* commit
(``PolicyAccessChecker.invalidate``). Validation errors point at the offending element (``details.field``).

Decisions (docs/policies.md "API"):
- partner-scope policies (``scope: "partner"``) are created, changed, bound and deleted by partner admins only
  (403 ``forbidden``); every tenant of the partner sees them read-only in its lists;
- ``scope`` is fixed at creation (changing it would move the policy between tenants); PUT replaces name,
  description and rules, keeps bindings, and keeps ``is_active``/``scope`` when they are omitted;
- a duplicate name is ``409 conflict`` with ``details.field = "name"``;
- "in use" means live (unexpired) bindings; expired bindings go with the policy without ``force``;
- a binding belongs to the tenant the request acts in: it names an identity of that tenant (``group:ops`` of
  tenant A is not ``group:ops`` of tenant B). On a partner-scope policy each tenant has its own bindings; a
  tenant sees and deletes only its own, and the index of a tenant evaluates only its own (issue 11 item 7).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.context import RequestContext
from core.cursor import decode_id_cursor, encode_id_cursor
from core.errors import AppError
from core.ids import new_id
from policy import Decision, EvalContext, Policy, check, parse_policy, parse_rules
from repositories import policies as repo
from repositories.events import outbox

IDENTITY_PREFIX = {"user": "user:", "service_account": "sa:", "group": "group:"}
_IDENTITY_RE = re.compile(r"(user|sa|group):[^\s\x00-\x1f\x7f-\x9f]{1,318}")  # fullmatch; no control chars
_PATH_RE = re.compile(r"[a-z0-9_-]+(/[a-z0-9_-]+){0,9}")
_BINDING_KEYS = frozenset({"identity_type", "identity_id", "expires_at"})
_PATCH_KEYS = frozenset({"name", "description", "rules", "is_active", "scope"})

GroupLookup = Callable[[str, str], Awaitable[Any]]  # (tenant_id, identity_id) -> auth CachedIdentity-like


@dataclass(frozen=True, slots=True)
class Change:
    """What a write touched; invalidate the compiled index for it after commit."""

    tenant_id: str | None
    partner_id: str | None
    result: dict[str, Any] | None = None


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def policy_from_row(row: Mapping[str, Any]) -> Policy:
    """The engine's Policy from a stored row (rules were validated and normalised on write)."""
    return Policy(id=row["id"], name=row["name"], rules=parse_rules(repo.rules_of(row)),  # type: ignore[arg-type]
                  scope=row["scope"], is_active=row["is_active"], description=row["description"])


def public(row: Mapping[str, Any], bindings: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "description": row["description"], "scope": row["scope"],
        "rules": _ordered(repo.rules_of(row)), "is_active": row["is_active"], "tenant_id": row["tenant_id"],  # type: ignore[arg-type]
        "partner_id": row["partner_id"], "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "created_by": row["created_by"],
    }
    if bindings is not None:
        out["bindings"] = [binding_public(b) for b in bindings]
    return out


def _ordered(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSONB reorders keys; give rules back in their documented key order (path_pattern first)."""
    return [r.to_dict() for r in parse_rules(rules)]


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "description": row["description"], "scope": row["scope"],
            "rule_count": row["rule_count"], "binding_count": row["binding_count"], "is_active": row["is_active"],
            "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


def binding_public(row: Mapping[str, Any]) -> dict[str, Any]:
    exp = row["expires_at"]
    return {"id": row["id"], "policy_id": row["policy_id"], "tenant_id": row["tenant_id"],
            "identity_type": row["identity_type"], "identity_id": row["identity_id"], "expires_at": iso(exp), "created_at": iso(row["created_at"]),
            "created_by": row["created_by"], "expired": exp is not None and exp <= datetime.now(UTC)}


def _invalid(field: str, message: str) -> AppError:
    return AppError("invalid_policy", f"{field}: {message}", {"field": field})


def _require_partner_admin(ctx: RequestContext) -> None:
    if not ctx.principal.is_partner_admin:
        raise AppError("forbidden", "partner-scope policies are managed by partner admins only",
                       {"required_role": "partner_admin"})
    if ctx.partner_id is None:
        raise AppError("forbidden", "this tenant has no partner; partner-scope policies need one")


def _change_for(row: Mapping[str, Any], result: dict[str, Any] | None) -> Change:
    if row["scope"] == "partner":
        return Change(None, row["partner_id"], result)
    return Change(row["tenant_id"], None, result)


async def _emit(conn: asyncpg.Connection, ctx: RequestContext, event_type: str, data: dict[str, Any]) -> None:
    await outbox.emit(conn, event_type=event_type, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                      identity_id=ctx.principal.identity_id, data=data, request_id=ctx.request_id)


async def _audit(audit: Any, ctx: RequestContext, conn: asyncpg.Connection, action: str, resource_id: str,
                 extra: dict[str, Any]) -> None:
    await audit.record(ctx, action=action, resource_type="policy", resource_id=resource_id, extra=extra, conn=conn)


async def _fetch(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, *,
                 for_update: bool = False) -> asyncpg.Record:
    row = await repo.get(conn, ctx.tenant_id, ctx.partner_id, policy_id, for_update=for_update)
    if row is None:
        raise AppError("policy_not_found", f"policy '{policy_id}' not found", {"id": policy_id})
    return row


def _duplicate(name: str) -> AppError:
    return AppError("conflict", f"a policy named '{name}' already exists", {"field": "name", "name": name})


# --- reads -----------------------------------------------------------------------------------------


def encode_cursor(last_id: str | None) -> str | None:
    return encode_id_cursor(last_id)


def decode_cursor(value: str | None, prefix: str) -> str | None:
    return decode_id_cursor(value, prefix)


async def list_policies(conn: asyncpg.Connection, ctx: RequestContext, *, scope: str | None,
                        include_inactive: bool, cursor: str | None, limit: int) -> dict[str, Any]:
    rows = await repo.list_page(conn, ctx.tenant_id, ctx.partner_id, scope=scope,
                                include_inactive=include_inactive, after=decode_cursor(cursor, "pol_"),
                                limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"policies": [summary(r) for r in rows],
            "cursor": encode_cursor(rows[-1]["id"]) if more else None, "has_more": more}


async def get_policy(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str) -> dict[str, Any]:
    row = await _fetch(conn, ctx, policy_id)
    return public(row, list(await repo.bindings_of(conn, policy_id, ctx.tenant_id)))


async def list_bindings(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str) -> dict[str, Any]:
    await _fetch(conn, ctx, policy_id)
    return {"bindings": [binding_public(b) for b in await repo.bindings_of(conn, policy_id, ctx.tenant_id)]}


# --- writes ----------------------------------------------------------------------------------------


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], audit: Any) -> Change:
    policy = parse_policy(body)
    if policy.scope == "partner":
        _require_partner_admin(ctx)
    rules = [r.to_dict() for r in policy.rules]
    try:
        async with conn.transaction():  # savepoint: a duplicate name must not poison the request transaction
            row = await repo.insert(
                conn, id=new_id("pol"), tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, name=policy.name,
                description=policy.description, scope=policy.scope, is_active=policy.is_active, rules=rules,
                created_by=ctx.principal.identity_id,
            )
    except asyncpg.UniqueViolationError:
        raise _duplicate(policy.name) from None
    ctx.describe("policy_create", resource_type="policy", resource_id=row["id"])
    data = {"policy_id": row["id"], "name": row["name"], "scope": row["scope"], "rule_count": len(rules),
            "is_active": row["is_active"], "created_by": ctx.principal.identity_id}
    await _emit(conn, ctx, "policy.created", data)
    await _audit(audit, ctx, conn, "policy_create", row["id"], {"name": row["name"], "scope": row["scope"]})
    return _change_for(row, public(row, []))


async def _update(conn: asyncpg.Connection, ctx: RequestContext, row: asyncpg.Record, doc: dict[str, Any],
                  audit: Any) -> Change:
    if row["scope"] == "partner":
        _require_partner_admin(ctx)
    if doc.get("scope", row["scope"]) != row["scope"]:
        raise _invalid("scope", "scope cannot be changed after creation; create a new policy instead")
    policy = parse_policy(doc, policy_id=row["id"])
    rules = [r.to_dict() for r in policy.rules]
    try:
        async with conn.transaction():
            new = await repo.update(conn, row["id"], name=policy.name, description=policy.description,
                                    is_active=policy.is_active, rules=rules)
    except asyncpg.UniqueViolationError:
        raise _duplicate(policy.name) from None
    changed = [k for k, old, now in (("name", row["name"], new["name"]),
                                     ("description", row["description"], new["description"]),
                                     ("rules", repo.rules_of(row), rules),
                                     ("is_active", row["is_active"], new["is_active"])) if old != now]
    data = {"policy_id": new["id"], "name": new["name"], "scope": new["scope"], "rule_count": len(rules),
            "is_active": new["is_active"], "changed": changed, "updated_by": ctx.principal.identity_id}
    await _emit(conn, ctx, "policy.updated", data)
    await _audit(audit, ctx, conn, "policy_update", new["id"], {"name": new["name"], "changed": changed})
    return _change_for(new, public(new, list(await repo.bindings_of(conn, new["id"], ctx.tenant_id))))


async def replace(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                  audit: Any) -> Change:
    """PUT: full replacement of name, description and rules; bindings preserved."""
    row = await _fetch(conn, ctx, policy_id, for_update=True)
    doc = {k: v for k, v in body.items() if k != "created_by"}  # echoed GET bodies carry it; read-only
    doc.setdefault("is_active", row["is_active"])
    doc.setdefault("scope", row["scope"])
    return await _update(conn, ctx, row, doc, audit)


async def patch(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                audit: Any) -> Change:
    """PATCH: any subset of name, description, rules, is_active."""
    unknown = sorted(str(k) for k in body if k not in _PATCH_KEYS)
    if unknown:
        raise _invalid(unknown[0], f"unknown or read-only key(s) {unknown}; allowed: {sorted(_PATCH_KEYS)}")
    row = await _fetch(conn, ctx, policy_id, for_update=True)
    doc = {"name": row["name"], "description": row["description"], "rules": repo.rules_of(row),
           "is_active": row["is_active"], "scope": row["scope"], **body}
    return await _update(conn, ctx, row, doc, audit)


async def delete(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, *, force: bool,
                 audit: Any) -> Change:
    row = await _fetch(conn, ctx, policy_id, for_update=True)
    if row["scope"] == "partner":
        _require_partner_admin(ctx)
    live = await repo.live_binding_count(conn, policy_id)
    if live and not force:
        raise AppError("policy_in_use", f"policy '{row['name']}' still has {live} binding(s); delete them first"
                       " or pass ?force=true", {"id": policy_id, "binding_count": live})
    await repo.delete(conn, policy_id)
    data = {"policy_id": policy_id, "name": row["name"], "scope": row["scope"], "bindings_removed": live,
            "deleted_by": ctx.principal.identity_id}
    await _emit(conn, ctx, "policy.deleted", data)
    await _audit(audit, ctx, conn, "policy_delete", policy_id,
                 {"name": row["name"], "force": force, "bindings_removed": live})
    return _change_for(row, None)


def _parse_binding(body: Mapping[str, Any]) -> tuple[str, str, datetime | None]:
    unknown = sorted(str(k) for k in body if k not in _BINDING_KEYS)
    if unknown:
        raise _invalid(unknown[0], f"unknown key(s) {unknown}; allowed: {sorted(_BINDING_KEYS)}")
    itype = body.get("identity_type")
    if itype not in IDENTITY_PREFIX:
        raise _invalid("identity_type", f"identity_type must be one of {list(IDENTITY_PREFIX)}")
    ident = body.get("identity_id")
    prefix = IDENTITY_PREFIX[itype]
    if not isinstance(ident, str) or not _IDENTITY_RE.fullmatch(ident) or not ident.startswith(prefix):
        raise _invalid("identity_id", f"identity_id must look like '{prefix}<name>' for identity_type '{itype}'")
    return itype, ident, _parse_expiry(body.get("expires_at"))


def _parse_expiry(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("expires_at", "expires_at must be an ISO-8601 timestamp")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("expires_at", "expires_at must be an ISO-8601 timestamp") from None
    try:  # stored as timestamptz (UTC): 9999-12-31T23:59:59-01:00 does not exist there
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except OverflowError:
        raise _invalid("expires_at", "expires_at is outside the supported range once converted to UTC") from None
    if ts <= datetime.now(UTC):
        raise _invalid("expires_at", "expires_at must be in the future")
    return ts


async def create_binding(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, body: Mapping[str, Any],
                         audit: Any) -> Change:
    row = await _fetch(conn, ctx, policy_id)
    if row["scope"] == "partner":
        _require_partner_admin(ctx)
    itype, ident, expires_at = _parse_binding(body)
    try:
        async with conn.transaction():
            b = await repo.insert_binding(conn, id=new_id("bnd"), tenant_id=ctx.tenant_id, policy_id=policy_id,
                                          identity_type=itype, identity_id=ident, expires_at=expires_at,
                                          created_by=ctx.principal.identity_id)
    except asyncpg.UniqueViolationError:  # unique per (policy, tenant, identity)
        raise AppError("conflict", f"'{ident}' is already bound to this policy",
                       {"field": "identity_id", "identity_id": ident}) from None
    ctx.describe("policy_bind", resource_type="policy_binding", resource_id=b["id"])
    data = {"binding_id": b["id"], "policy_id": policy_id, "policy_name": row["name"], "identity_type": itype,
            "identity_id": ident, "expires_at": iso(expires_at), "created_by": ctx.principal.identity_id}
    await _emit(conn, ctx, "policy.binding.created", data)
    await _audit(audit, ctx, conn, "policy_bind", policy_id,
                 {"binding_id": b["id"], "identity_id": ident, "expires_at": iso(expires_at)})
    return _change_for(row, binding_public(b))


async def delete_binding(conn: asyncpg.Connection, ctx: RequestContext, policy_id: str, binding_id: str,
                         audit: Any) -> Change:
    row = await _fetch(conn, ctx, policy_id)
    if row["scope"] == "partner":
        _require_partner_admin(ctx)
    b = await repo.delete_binding(conn, policy_id, binding_id, ctx.tenant_id)
    if b is None:
        raise AppError("binding_not_found", f"binding '{binding_id}' not found on policy '{policy_id}'",
                       {"id": binding_id, "policy_id": policy_id})
    data = {"binding_id": binding_id, "policy_id": policy_id, "policy_name": row["name"],
            "identity_id": b["identity_id"], "deleted_by": ctx.principal.identity_id}
    await _emit(conn, ctx, "policy.binding.deleted", data)
    await _audit(audit, ctx, conn, "policy_unbind", policy_id,
                 {"binding_id": binding_id, "identity_id": b["identity_id"]})
    return _change_for(row, None)


# --- dry run ---------------------------------------------------------------------------------------


def validate_path(path: str, field: str = "path") -> str:
    """Secret path rules (spec §6.2) -> 400 invalid_path."""
    if len(path) > 512 or not _PATH_RE.fullmatch(path):
        raise AppError("invalid_path", "path must be 1-10 '/'-separated segments of a-z 0-9 - _ (max 512 chars)",
                       {"field": field, "path": path[:600]})
    return path


@dataclass(frozen=True, slots=True)
class TestedIdentity:
    """Who the dry run evaluates: the ids a real request by the identity would be matched with, and why."""

    identity_id: str
    groups: dict[str, list[str]]  # source -> group ids: identity_cache | token | request
    cache: dict[str, Any] | None  # what the identity cache holds for a user (None: no cache for this identity)
    refused: AppError | None = None  # a real request would be refused before any policy is evaluated

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys([self.identity_id, *(g for gs in self.groups.values() for g in gs)]))

    def to_dict(self) -> dict[str, Any]:
        return {"identity_id": self.identity_id, "identity_ids": self.ids,
                "groups": [i for i in self.ids if i.startswith("group:")], "groups_source": self.groups,
                "identity_cache": self.cache}


def _group_id(g: str) -> str:
    return g if g.startswith("group:") else f"group:{g}"


async def tested_identity(ctx: RequestContext, identity_id: str, groups: list[str] | None,
                          lookup: GroupLookup | None) -> TestedIdentity:
    """The ids a real request by ``identity_id`` in the request's tenant is evaluated with (docs/policies.md
    "Dry run"): the identity, the groups the identity cache holds for a user (``lookup``: the same query the
    request path's enricher runs, auth/identity_enrichment.py), plus the token's ``groups`` claim, which the
    dry run cannot see for another identity: the body's ``groups`` stand in for it, and a caller testing itself
    without ``groups`` uses its own token's groups. A user the cache holds as suspended or deleted would be
    refused before any policy is evaluated; the dry run says so."""
    sources: dict[str, list[str]] = {}
    cache: dict[str, Any] | None = None
    refused: AppError | None = None
    if lookup is not None and identity_id.startswith("user:"):
        entry = await lookup(ctx.tenant_id, identity_id)
        cache = {"found": bool(entry.found), "status": entry.status if entry.found else None,
                 "deleted": bool(entry.deleted)}
        if entry.found and entry.deleted:
            refused = AppError("token_revoked", "this user no longer exists in ScaiKey", {"reason": "user_deleted"})
        elif entry.found and entry.status == "SUSPENDED":
            refused = AppError("access_denied", "this user is suspended in ScaiKey", {"reason": "user_suspended"})
        elif entry.found:
            sources["identity_cache"] = [_group_id(g) for g in entry.groups]
    if groups is not None:
        sources["request"] = [_group_id(g) for g in groups]
    elif identity_id == ctx.principal.identity_id:
        sources["token"] = [g for g in ctx.principal.groups if g not in sources.get("identity_cache", ())]
    return TestedIdentity(identity_id, sources, cache, refused)


def dry_run(index: Any, identity_ids: list[str], path: str, permission: str, *, source_ip: str | None,
            mfa_verified: bool, timestamp: datetime | None) -> Decision:
    now = timestamp or datetime.now(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    ectx = EvalContext(source_ip=source_ip, mfa_verified_at=now if mfa_verified else None, now=now)
    return check(index, identity_ids, path, permission, ectx, explain=True)
