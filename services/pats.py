"""Personal access tokens: create (scopes never exceed the creator's), list, revoke.

A PAT stores the identity and its scopes only; roles, groups and the user's status are resolved live at every
request (auth/authenticator.py). ``revoke_for_user`` ends every PAT of a user ScaiKey deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.context import RequestContext
from auth.principal import SCOPES
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from crypto.tokens import generate_pat
from db.engine import Database
from repositories import pats as repo

MAX_TTL = timedelta(days=366)


def public(row: Any, token: str | None = None) -> dict[str, Any]:
    out = {
        "id": row["id"], "name": row["name"], "identity_id": row["identity_id"], "tenant_id": row["tenant_id"],
        "scopes": list(row["scopes"]), "token_prefix": row["token_prefix"], "created_at": row["created_at"],
        "expires_at": row["expires_at"], "last_used_at": row["last_used_at"], "revoked_at": row["revoked_at"],
    }
    if token is not None:
        out["token"] = token
    return out


async def create(db: Database, ctx: RequestContext, *, name: str, scopes: list[str], expires_in: str | None,
                 hasher: Any, default_ttl_days: int, audit: Any) -> dict[str, Any]:
    p = ctx.principal
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise AppError("validation_error", "unknown scope", {"fields": [
            {"field": "scopes", "message": f"unknown scope(s): {', '.join(unknown)}"}]})
    beyond = [s for s in scopes if not p.has_scope(s)]
    if beyond:
        raise AppError("insufficient_scope", "a token cannot carry scopes its creator does not hold",
                       {"requested_scopes": beyond, "creator_scopes": sorted(p.scopes)})
    ttl = parse_duration(expires_in, field="expires_in") if expires_in else timedelta(days=default_ttl_days)
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise AppError("invalid_duration", "expires_in must be between 1s and 366d", {"field": "expires_in"})
    if p.expires_at is not None and p.token_kind == "pat":
        ttl = min(ttl, p.expires_at - datetime.now(UTC))  # a PAT cannot outlive the PAT that made it
    token, prefix = generate_pat()
    token_id = new_id("pat")
    ctx.describe("token_create", resource_type="token", resource_id=token_id)
    async with db.raw() as conn, conn.transaction():
        row = await repo.insert(
            conn, id=token_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
            identity_id=p.identity_id, identity_type=p.identity_type, subject=p.subject, name=name,
            token_hash=hasher(token), token_prefix=prefix, scopes=sorted(set(scopes)), groups=[],
            roles=[], expires_at=datetime.now(UTC) + ttl,  # roles/groups are resolved live, never frozen
        )
        await audit.record(ctx, extra={"name": name, "scopes": sorted(set(scopes))}, conn=conn)
    return public(row, token)


def _may_manage(ctx: RequestContext, row: Any) -> bool:
    return row["identity_id"] == ctx.principal.identity_id or ctx.principal.has_scope("admin")


async def get(db: Database, ctx: RequestContext, token_id: str) -> Any:
    async with db.raw() as conn:
        row = await repo.get(conn, ctx.tenant_id, token_id)
    if row is None or not _may_manage(ctx, row):
        raise AppError("token_not_found", f"token '{token_id}' not found", {"id": token_id})
    return row


async def list_tokens(db: Database, ctx: RequestContext, *, all_identities: bool, cursor: str | None,
                      limit: int) -> tuple[list[Any], str | None]:
    identity = None if (all_identities and ctx.principal.has_scope("admin")) else ctx.principal.identity_id
    async with db.raw() as conn:
        rows = await repo.list_for(conn, ctx.tenant_id, identity, after=cursor, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more else None)


async def revoke(db: Database, ctx: RequestContext, token_id: str, *, audit: Any) -> str:
    await get(db, ctx, token_id)
    async with db.raw() as conn, conn.transaction():
        row = await repo.revoke(conn, ctx.tenant_id, token_id, ctx.principal.identity_id)
        await audit.record(ctx, conn=conn)
    assert row is not None
    return str(row["token_hash"])


async def revoke_for_user(conn: Any, tenant_id: str, user_id: str, *, by: str) -> list[str]:
    """Revoke every live PAT of ``user_id`` in ``tenant_id`` (inside the caller's transaction); returns their
    hashes for a revocation broadcast. Called when ScaiKey reports the user deleted."""
    return await repo.revoke_for_subject(conn, tenant_id, "user", user_id, by)
