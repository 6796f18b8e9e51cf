"""Which events a subscription owner may receive: its live ``read`` or ``list`` permission on the event's path.

One rule for every way a subscription's events leave (issue 11 item 6; docs/events.md "Who receives what"):

- a polling subscription is filtered when it is polled, with the poller's own request context;
- a webhook-delivered subscription is filtered by the relay at fan-out, and again by the delivery activity right
  before each attempt (a grant revoked between fan-out and a retry stops the delivery), both with
  :func:`owner_context`: the owner as the policy engine sees it *now*;
- ``policy.violation`` events carry the denied path and follow the same rule.

An event is visible when it has no path (policy and engine events: their subscription must list ``**``), or when
the owner holds ``read`` or ``list`` on its path: an event carries metadata (path, version, actor), never a value,
which is exactly what ``list`` shows. Events on partner secrets (``data.scope == "partner"``) are checked against
partner-scope policies, like the secret itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import asyncpg

from api.context import RequestContext
from auth.principal import Principal
from core.ids import new_id
from repositories.identity import cache as cache_repo

Scope = Literal["tenant", "partner"]


def event_scope(env: Mapping[str, Any]) -> Scope:
    data = env.get("data")
    return "partner" if isinstance(data, Mapping) and data.get("scope") == "partner" else "tenant"


async def visible(access: Any, ctx: RequestContext, envs: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each envelope, whether the caller of ``ctx`` may see it (``read`` or ``list`` on its path)."""
    wanted: dict[Scope, set[str]] = {"tenant": set(), "partner": set()}
    for env in envs:
        if env.get("path"):
            wanted[event_scope(env)].add(env["path"])
    seen: dict[Scope, set[str]] = {"tenant": set(), "partner": set()}
    for scope, paths in wanted.items():
        if not paths:
            continue
        ordered = sorted(paths)
        seen[scope] = set(await access.filter(ctx, ordered, "read", scope=scope))
        rest = [p for p in ordered if p not in seen[scope]]
        if rest:
            seen[scope] |= set(await access.filter(ctx, rest, "list", scope=scope))
    return [not env.get("path") or env["path"] in seen[event_scope(env)] for env in envs]


async def owner_context(conn: asyncpg.Connection, tenant_id: str, partner_id: str | None,
                        identity_id: str) -> RequestContext | None:
    """The subscription owner as a caller of the policy engine, resolved live: its own id plus the groups the
    identity cache (ScaiKey sync) holds for it now. None when the owner is a user ScaiKey reports deleted or
    suspended: such an owner receives nothing.

    There is no request behind a delivery, so there is no source address and no MFA: rules with ``ip_ranges``
    or ``require_mfa`` conditions do not grant a webhook delivery (fail closed). Groups that only a token
    carried (not synced) do not count either.
    """
    kind, _, ref = identity_id.partition(":")
    groups: tuple[str, ...] = ()
    identity_type: Any = "service_account" if kind == "sa" else "user"
    if kind == "user":
        row = await cache_repo.principal_row(conn, tenant_id, ref, ref if "@" in ref else None)
        if row is not None:
            if row["deleted_at"] is not None or row["status"] in ("SUSPENDED", "DELETED"):
                return None
            groups = tuple(sorted(f"group:{g}" for g in row["group_names"]))
    elif kind != "sa":
        return None  # not an identity a subscription can have: nothing is visible to it
    principal = Principal(identity_id=identity_id, identity_type=identity_type, subject=ref, tenant_id=tenant_id,
                          partner_id=partner_id, scopes=frozenset(), groups=groups)
    rid = new_id("req")
    return RequestContext(principal=principal, tenant_id=tenant_id, partner_id=partner_id, request_id=rid,
                          source_ip=None, user_agent="scaivault-event-relay", scope=None, category=None,
                          correlation_id=rid)
