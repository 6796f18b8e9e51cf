"""Conflicts (lifecycle.md §6.4): a path written locally since the last sync whose value differs from the remote.
The sync records it and never overwrites the local value; ``POST …/conflicts/{id}/resolve`` ends it:

- ``keep: local``: the local value stays; the ledger takes the conflicting remote version as seen, so the next
  sync leaves the path alone until the remote changes again;
- ``keep: remote``: the remote value is fetched now and written as a new local version through the secrets write
  path as the caller (who needs ``write`` on the path, like any write).
"""

from __future__ import annotations

from typing import Any

import orjson

from api.context import RequestContext
from auth.tenancy import UNASSIGNED_PARTNER
from core.cursor import decode_id_cursor, encode_id_cursor
from core.errors import AppError
from repositories import federation as repo
from repositories.events.outbox import iso
from repositories.secrets import Owner
from services.federation import backends as bk
from services.federation.remote import RemoteError


def public(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "backend_id": r["backend_id"], "path": r["path"], "backend_path": r["backend_path"],
            "local_version": r["local_version"], "remote_version_id": r["remote_version_id"],
            "detected_at": iso(r["detected_at"]), "resolution": r["resolution"],
            "resolved_at": iso(r["resolved_at"]) if r["resolved_at"] else None, "resolved_by": r["resolved_by"]}


def not_found(conflict_id: str) -> AppError:
    return AppError("conflict_not_found", f"conflict {conflict_id!r} not found", {"conflict_id": conflict_id})


async def list_conflicts(state: Any, ctx: RequestContext, backend_id: str, *, include_resolved: bool,
                         cursor: str | None, limit: int) -> dict[str, Any]:
    await bk.get_row(state, ctx, backend_id)
    after = decode_id_cursor(cursor, "fcf_") if cursor else None
    async with state.db.raw() as conn:
        rows = await repo.list_conflicts(conn, ctx.tenant_id, backend_id, include_resolved=include_resolved,
                                         after=after, limit=limit + 1)
    # Only the paths the caller may list are shown (a conflict names a secret path).
    allowed = set(await state.components["access"].filter(ctx, [r["path"] for r in rows], "list", scope="tenant"))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"conflicts": [public(r) for r in rows if r["path"] in allowed],
            "cursor": encode_id_cursor(rows[-1]["id"]) if more else None, "has_more": more}


async def resolve(state: Any, ctx: RequestContext, backend_id: str, conflict_id: str, keep: str) -> dict[str, Any]:
    row = await bk.get_row(state, ctx, backend_id)
    async with state.db.raw() as conn:
        c = await repo.get_conflict(conn, ctx.tenant_id, backend_id, conflict_id)
    if c is None:
        raise not_found(conflict_id)
    await state.components["access"].check(ctx, c["path"], "write", scope="tenant")
    if c["resolution"] is not None:
        raise AppError("conflict", f"conflict {conflict_id!r} is already resolved ({c['resolution']})",
                       {"conflict_id": conflict_id, "resolution": c["resolution"]})
    service = state.components["secrets"]
    owner = Owner("tenant", ctx.tenant_id, ctx.partner_id or UNASSIGNED_PARTNER)
    remote_version = c["remote_version_id"]
    if keep == "remote":
        try:
            remote = await bk.remote_for(state, row)
            try:
                data, remote_version = await remote.read(c["backend_path"])
            finally:
                await remote.aclose()
        except RemoteError as exc:
            raise bk.unavailable(row, exc) from None
        _, body = await service.write(ctx, owner, c["path"], {"data": data})
        local_version = orjson.loads(body)["version"]
    else:
        async with state.db.raw() as conn:
            local_version = await conn.fetchval(
                "SELECT current_version FROM secrets WHERE scope = 'tenant' AND owner_id = $1 AND path = $2",
                ctx.tenant_id, c["path"])
    async with state.db.raw() as conn, conn.transaction():
        locked = await repo.get_conflict(conn, ctx.tenant_id, backend_id, conflict_id, for_update=True)
        if locked is None or locked["resolution"] is not None:
            raise AppError("conflict", f"conflict {conflict_id!r} was resolved meanwhile", {"conflict_id": conflict_id})
        await repo.put_item(conn, backend_id, c["path"], c["backend_path"], remote_version, local_version)
        done = await repo.resolve_conflict(conn, conflict_id, keep, ctx.principal.identity_id)
        await state.get("audit").record(ctx, action="federation_conflict_resolve", path=c["path"],
                                        resource_type="federation_conflict", resource_id=conflict_id,
                                        extra={"keep": keep, "backend_id": backend_id}, conn=conn)
    return public(done)
