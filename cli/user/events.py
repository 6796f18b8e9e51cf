"""User commands for events and identity, on the SDK: ``webhooks`` (list, get, create, delete, test,
deliveries), ``subscriptions`` (list, get, create, delete, poll, ack) and ``identity`` (look-ups in the
identity cache mirrored from ScaiKey: tenants, users, groups, members, resolve, roles, sync, sync-status).
Exit codes as for every user command (cli/user/output.py)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

from cli.groups import command_group
from cli.user.output import OK, UsageError, print_fields, print_json, print_table


def _csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UsageError(f"{what} is empty")
    return items


def _print_record(args: argparse.Namespace, rec: Any, fields: list[str]) -> int:
    if args.json:
        print_json(rec.raw)
    else:
        print_fields([(f, rec.get(f)) for f in fields])
    return OK


# ------------------------------------------------------------------------------------------------ webhooks

WEBHOOK_FIELDS = ["id", "name", "url", "events", "filters", "enabled", "status", "created_at"]


def _webhooks_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.webhooks.list(limit=args.limit))
    if args.json:
        print_json({"webhooks": [w.raw for w in rows]})
    else:
        print_table(["id", "name", "url", "events", "enabled", "status"],
                    [(w.id, w.get("name"), w.get("url"), w.get("events"), w.get("enabled"), w.get("status"))
                     for w in rows])
    return OK


def _webhooks_get(args: argparse.Namespace, client: Any) -> int:
    return _print_record(args, client.webhooks.get(args.webhook_id), WEBHOOK_FIELDS)


def _webhooks_create(args: argparse.Namespace, client: Any) -> int:
    generated = args.secret is None
    if args.secret == "-":
        secret = sys.stdin.readline().strip()
        if not secret:
            raise UsageError("--secret -: nothing on stdin")
    else:
        secret = args.secret or "whsec_" + secrets.token_urlsafe(32)
    filters = None
    if args.filter_paths:
        filters = {"paths": _csv(args.filter_paths, "--filter-paths")}
    hook = client.webhooks.create(args.name, args.url, secret, _csv(args.events, "--events"), filters=filters,
                                  enabled=not args.disabled)
    if args.json:
        print_json({**hook.raw, **({"secret": secret} if generated else {})})
        return OK
    _print_record(args, hook, WEBHOOK_FIELDS)
    if generated:
        print(f"signing secret (shown once; verify deliveries with it): {secret}")
    return OK


def _webhooks_delete(args: argparse.Namespace, client: Any) -> int:
    client.webhooks.delete(args.webhook_id)
    print(f"deleted {args.webhook_id}")
    return OK


def _webhooks_test(args: argparse.Namespace, client: Any) -> int:
    result = client.webhooks.test(args.webhook_id)
    if args.json:
        print_json(result.raw)
    else:
        print_fields(list(result.raw.items()))
    return OK


def _webhooks_deliveries(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.webhooks.deliveries(args.webhook_id, limit=args.limit))
    if args.json:
        print_json({"deliveries": [d.raw for d in rows]})
    else:
        print_table(["id", "event_type", "status", "attempts", "response_status", "created_at"],
                    [(d.id, d.get("event_type"), d.get("status"), d.get("attempts") or d.get("attempt"),
                      d.get("response_status"), d.get("created_at")) for d in rows])
    return OK


# ------------------------------------------------------------------------------------------------ subscriptions

SUB_FIELDS = ["id", "name", "paths", "events", "delivery", "status", "created_at"]


def _subs_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.subscriptions.list(limit=args.limit))
    if args.json:
        print_json({"subscriptions": [s.raw for s in rows]})
    else:
        print_table(["id", "name", "paths", "events", "delivery"],
                    [(s.id, s.get("name"), s.get("paths"), s.get("events"), (s.get("delivery") or {}).get("type"))
                     for s in rows])
    return OK


def _subs_get(args: argparse.Namespace, client: Any) -> int:
    return _print_record(args, client.subscriptions.get(args.subscription_id), SUB_FIELDS)


def _subs_create(args: argparse.Namespace, client: Any) -> int:
    delivery: dict[str, Any] = {"type": "webhook" if args.url else "polling"}
    if args.url:
        delivery["url"] = args.url
        if args.secret == "-":
            delivery["secret"] = sys.stdin.readline().strip()
    if args.buffer_size is not None:
        delivery["buffer_size"] = args.buffer_size
    sub = client.subscriptions.create(args.name, _csv(args.paths, "--paths"), _csv(args.events, "--events"),
                                      delivery=delivery)
    return _print_record(args, sub, SUB_FIELDS)


def _subs_delete(args: argparse.Namespace, client: Any) -> int:
    client.subscriptions.delete(args.subscription_id)
    print(f"deleted {args.subscription_id}")
    return OK


def _subs_poll(args: argparse.Namespace, client: Any) -> int:
    if not 0 <= args.wait <= 60:
        raise UsageError("--wait must be between 0 and 60 seconds")
    events = client.subscriptions.poll(args.subscription_id, wait=args.wait, max_events=args.max_events)
    for e in events:
        if args.json:
            print(json.dumps(e), flush=True)
        else:
            print(f"{e.get('timestamp')}  {e.get('event_type'):<24} {e.get('path') or '-'}  {e.get('event_id')}")
    if args.ack and events:
        client.subscriptions.ack(args.subscription_id, [e["event_id"] for e in events if e.get("event_id")])
        if not args.json:
            print(f"acknowledged {len(events)} event(s)", file=sys.stderr)
    return OK


def _subs_ack(args: argparse.Namespace, client: Any) -> int:
    out = client.subscriptions.ack(args.subscription_id, args.event_ids)
    if args.json:
        print_json(out)
    else:
        print(f"acknowledged {len(args.event_ids)} event(s)")
    return OK


# ------------------------------------------------------------------------------------------------ identity


def _page_table(args: argparse.Namespace, key: str, result: tuple[list[Any], int], cols: list[str]) -> int:
    rows, total = result
    if args.json:
        print_json({key: [r.raw for r in rows], "total": total})
    else:
        print_table(cols, [[r.get(c) for c in cols] for r in rows])
        print(f"({len(rows)} of {total})", file=sys.stderr)
    return OK


def _id_tenants(args: argparse.Namespace, client: Any) -> int:
    return _page_table(args, "tenants", client.identity.tenants(partner_id=args.partner_id, page=args.page,
                                                                page_size=args.page_size),
                       ["id", "name", "partner_id", "status"])


def _id_users(args: argparse.Namespace, client: Any) -> int:
    return _page_table(args, "users", client.identity.users(args.tenant_id, q=args.q, page=args.page,
                                                            page_size=args.page_size),
                       ["id", "email", "display_name", "status"])


def _id_groups(args: argparse.Namespace, client: Any) -> int:
    return _page_table(args, "groups", client.identity.groups(args.tenant_id, page=args.page,
                                                              page_size=args.page_size),
                       ["id", "name", "description"])


def _id_members(args: argparse.Namespace, client: Any) -> int:
    return _page_table(args, "members", client.identity.members(args.group_id, page=args.page,
                                                                page_size=args.page_size),
                       ["id", "email", "display_name"])


def _id_resolve(args: argparse.Namespace, client: Any) -> int:
    rec = client.identity.resolve(args.identity_type, args.identity_id)
    if args.json:
        print_json(rec.raw)
    else:
        print_fields(list(rec.raw.items()))
    return OK


def _id_roles(args: argparse.Namespace, client: Any) -> int:
    roles = client.identity.roles()
    if args.json:
        print_json(roles)
    else:
        items = roles.get("roles", roles) if isinstance(roles, dict) else roles
        if isinstance(items, list) and items and isinstance(items[0], dict):
            cols = [c for c in ("name", "description") if c in items[0]] or sorted(items[0])
            print_table(cols, [[r.get(c) for c in cols] for r in items])
        else:
            print_json(roles)
    return OK


def _id_sync(args: argparse.Namespace, client: Any) -> int:
    rec = client.identity.sync(partner_id=args.partner_id, tenant_id=args.tenant_id)
    return _print_record(args, rec, ["sync_id", "status", "started_at"])


def _id_sync_status(args: argparse.Namespace, client: Any) -> int:
    rec = client.identity.sync_status(args.sync_id)
    if args.json:
        print_json(rec.raw)
    else:
        print_fields(list(rec.raw.items()))
    return OK


# ------------------------------------------------------------------------------------------------ register


def register(sub: argparse._SubParsersAction, run: Any, j: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    def limit(p: argparse.ArgumentParser) -> None:
        p.add_argument("--limit", type=int, help="at most N (default: all, fetched page by page)")

    def paged(p: argparse.ArgumentParser) -> None:
        p.add_argument("--page", type=int, default=1)
        p.add_argument("--page-size", type=int, default=50)

    wh = command_group(sub, "webhooks", "webhook endpoints and their deliveries (scope admin; user CLI)")
    p = wh.add_parser("list", parents=[j], help="registered webhooks")
    limit(p)
    p.set_defaults(func=run(_webhooks_list))
    p = wh.add_parser("get", parents=[j], help="one webhook (never its secret)")
    p.add_argument("webhook_id")
    p.set_defaults(func=run(_webhooks_get))
    p = wh.add_parser("create", parents=[j], help="register an endpoint; without --secret one is generated and "
                      "shown once")
    p.add_argument("name")
    p.add_argument("--url", required=True)
    p.add_argument("--events", required=True, help="comma-separated, e.g. secret.updated,rotation.*")
    p.add_argument("--secret", help="'-' reads the signing secret from stdin (keeps it out of shell history)")
    p.add_argument("--filter-paths", help="comma-separated path patterns, e.g. prod/**")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.set_defaults(func=run(_webhooks_create))
    p = wh.add_parser("delete", help="delete a webhook")
    p.add_argument("webhook_id")
    p.set_defaults(func=run(_webhooks_delete))
    p = wh.add_parser("test", parents=[j], help="send a webhook.test event now and show the outcome")
    p.add_argument("webhook_id")
    p.set_defaults(func=run(_webhooks_test))
    p = wh.add_parser("deliveries", parents=[j], help="recent deliveries of a webhook")
    p.add_argument("webhook_id")
    limit(p)
    p.set_defaults(func=run(_webhooks_deliveries))

    subs = command_group(sub, "subscriptions", "event subscriptions: polling or webhook delivery (user CLI)")
    p = subs.add_parser("list", parents=[j], help="your subscriptions")
    limit(p)
    p.set_defaults(func=run(_subs_list))
    p = subs.add_parser("get", parents=[j], help="one subscription")
    p.add_argument("subscription_id")
    p.set_defaults(func=run(_subs_get))
    p = subs.add_parser("create", parents=[j], help="subscribe to events on paths (polling unless --url)")
    p.add_argument("name")
    p.add_argument("--paths", required=True, help="comma-separated patterns, e.g. app/**")
    p.add_argument("--events", required=True, help="comma-separated, e.g. secret.updated,secret.deleted")
    p.add_argument("--url", help="deliver by webhook to this URL instead of polling")
    p.add_argument("--secret", choices=["-"], help="'-': the webhook signing secret from stdin (with --url)")
    p.add_argument("--buffer-size", type=int)
    p.set_defaults(func=run(_subs_create))
    p = subs.add_parser("delete", help="delete a subscription")
    p.add_argument("subscription_id")
    p.set_defaults(func=run(_subs_delete))
    p = subs.add_parser("poll", parents=[j], help="un-acknowledged events (NDJSON with --json); --ack acknowledges")
    p.add_argument("subscription_id")
    p.add_argument("--wait", type=float, default=0, help="seconds to wait for the first event (0-60)")
    p.add_argument("--max-events", type=int, default=100)
    p.add_argument("--ack", action="store_true", help="acknowledge what was printed")
    p.set_defaults(func=run(_subs_poll))
    p = subs.add_parser("ack", parents=[j], help="acknowledge events by id")
    p.add_argument("subscription_id")
    p.add_argument("event_ids", nargs="+", metavar="EVENT_ID")
    p.set_defaults(func=run(_subs_ack))

    ident = command_group(sub, "identity", "the identity cache mirrored from ScaiKey (user CLI)")
    p = ident.add_parser("tenants", parents=[j], help="tenants (identity:read)")
    p.add_argument("--partner-id")
    paged(p)
    p.set_defaults(func=run(_id_tenants))
    p = ident.add_parser("users", parents=[j], help="a tenant's users")
    p.add_argument("tenant_id")
    p.add_argument("--q", help="search email or name")
    paged(p)
    p.set_defaults(func=run(_id_users))
    p = ident.add_parser("groups", parents=[j], help="a tenant's groups")
    p.add_argument("tenant_id")
    paged(p)
    p.set_defaults(func=run(_id_groups))
    p = ident.add_parser("members", parents=[j], help="a group's members")
    p.add_argument("group_id")
    paged(p)
    p.set_defaults(func=run(_id_members))
    p = ident.add_parser("resolve", parents=[j], help="an identity with its groups, e.g. resolve user usr_123")
    p.add_argument("identity_type", choices=["user", "group"])
    p.add_argument("identity_id")
    p.set_defaults(func=run(_id_resolve))
    p = ident.add_parser("roles", parents=[j], help="the assignable admin roles")
    p.set_defaults(func=run(_id_roles))
    p = ident.add_parser("sync", parents=[j], help="start a sync from ScaiKey now (identity:admin)")
    p.add_argument("--partner-id")
    p.add_argument("--tenant-id")
    p.set_defaults(func=run(_id_sync))
    p = ident.add_parser("sync-status", parents=[j], help="one sync's progress")
    p.add_argument("sync_id")
    p.set_defaults(func=run(_id_sync_status))
