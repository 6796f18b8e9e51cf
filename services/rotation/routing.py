"""A rotation policy's ``webhook_ids``: the webhooks that receive the rotation events of the secrets under that
policy (lifecycle.md §1.1; docs/rotation.md "Routing to the policy's webhooks").

The outbox relay (services/events/relay.py) calls :func:`add_policy_routes` for every batch, after its normal
fan-out (each webhook's own ``events``/``filters``) and before the delivery rows are written, in the same
transaction. For each routed event (``rotation.*`` and ``secret.rotated``, which all carry
``data.rotation_policy_id``) it adds one delivery per webhook the policy names, when:

* the webhook is a plain webhook (``/v1/webhooks``) of the event's tenant and enabled; a deleted webhook is
  skipped (the API refuses unknown and other tenants' ids when the policy is written, ``404 webhook_not_found``);
* the webhook's owner (the identity that created it) may see the event: live ``read`` or ``list`` on its path,
  the rule every subscription owner is held to (services/events/visibility.py). Naming a webhook on a policy
  never widens what its owner could see.

The policy's list is in addition to the webhook's own subscription and does not need it: a webhook named on a
policy gets that policy's rotation events whatever its ``events`` and ``filters`` say. A webhook that matches
both ways gets one delivery (deliveries are unique per (webhook, event)). Non-rotation events
(``secret.updated`` with ``is_rotation: true`` included) follow the webhook's own subscription only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import orjson

from core.ids import new_id
from repositories.events import outbox as events_repo
from services.events.visibility import owner_context, visible

ROUTED_TYPES = frozenset({"secret.rotated"})
ROUTED_PREFIX = "rotation."


def routed(event_type: str) -> bool:
    return event_type.startswith(ROUTED_PREFIX) or event_type in ROUTED_TYPES


def _data(row: Mapping[str, Any]) -> dict[str, Any]:
    data = row["data"]
    if isinstance(data, str | bytes):
        data = orjson.loads(data)
    return data if isinstance(data, dict) else {}


async def add_policy_routes(conn: asyncpg.Connection, access: Any, plan: Any, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append to ``plan.deliveries`` (and ``plan.envelopes``) the deliveries the events' rotation policies ask for.
    Returns how many were added."""
    wanted: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        if not routed(row["event_type"]):
            continue
        pid = _data(row).get("rotation_policy_id")
        if isinstance(pid, str) and pid:
            wanted.setdefault((row["tenant_id"], pid), []).append(row)
    if not wanted:
        return 0
    tenants = sorted({t for t, _ in wanted})
    policies = await conn.fetch(
        "SELECT tenant_id, id, webhook_ids FROM rotation_policies WHERE tenant_id = ANY($1::text[])"
        " AND id = ANY($2::text[]) AND jsonb_array_length(webhook_ids) > 0",
        tenants, sorted({p for _, p in wanted}))
    targets: dict[tuple[str, str], list[str]] = {}
    for p in policies:
        ids = p["webhook_ids"]
        ids = orjson.loads(ids) if isinstance(ids, str) else list(ids or [])
        targets[(p["tenant_id"], p["id"])] = [i for i in ids if isinstance(i, str)]
    if not targets:
        return 0
    hooks = {(h["tenant_id"], h["id"]): h for h in await conn.fetch(
        "SELECT id, tenant_id, created_by FROM webhooks WHERE tenant_id = ANY($1::text[]) AND id = ANY($2::text[])"
        " AND kind = 'webhook' AND enabled", tenants, sorted({i for ids in targets.values() for i in ids}))}
    have = {(d[2], d[3]) for d in plan.deliveries}
    # (tenant, partner, owner) -> [(webhook id, envelope)], checked together
    groups: dict[tuple[str, str | None, str], list[tuple[str, dict[str, Any]]]] = {}
    for key, events in wanted.items():
        for wid in targets.get(key, ()):
            hook = hooks.get((key[0], wid))
            if hook is None or not hook["created_by"]:
                continue
            for row in events:
                if (wid, row["event_id"]) in have:
                    continue
                env = plan.envelopes.get(row["event_id"]) or events_repo.envelope(row)
                groups.setdefault((key[0], row["partner_id"], hook["created_by"]), []).append((wid, env))
    added = 0
    for (tenant, partner, owner), items in groups.items():
        ctx = await owner_context(conn, tenant, partner, owner)
        if ctx is None:
            continue
        flags = await visible(access, ctx, [env for _, env in items])
        for (wid, env), ok in zip(items, flags, strict=True):
            if not ok or (wid, env["event_id"]) in have:
                continue
            have.add((wid, env["event_id"]))
            plan.envelopes[env["event_id"]] = env
            plan.deliveries.append((new_id("del"), tenant, wid, env["event_id"], env["event_type"],
                                    orjson.dumps(env)))
            added += 1
    return added

