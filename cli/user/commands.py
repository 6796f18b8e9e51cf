"""User commands: ``auth``, ``secrets``, ``policies``, ``audit tail|export`` and ``completion`` (plus the areas
registered from cli/user/lifecycle.py and cli/user/events.py), each a thin layer over ``SyncScaiVaultClient``.
Errors become one ``error: <code>: <message>`` line on stderr and the exit code of core.md §8.3 (see
``cli/user/output.py``); ``SCAIVAULT_DEBUG=1`` adds tracebacks and HTTP logs.

The lifecycle areas (``pki``, ``leases``, ``dynamic``, ``rotation``: cli/user/lifecycle.py) and events and
identity (``webhooks``, ``subscriptions``, ``identity``: cli/user/events.py) register through ``register`` here
with the same ``_run`` wrapper, so they share config, errors and exit codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.groups import command_group
from cli.user import config as cfg
from cli.user.output import (
    AUTH,
    OK,
    VALIDATION,
    Progress,
    UsageError,
    exit_code,
    print_fields,
    print_json,
    print_table,
)

Handler = Callable[[argparse.Namespace, Any], int]
PERMISSIONS = ("read", "write", "delete", "list", "rotate", "admin")


def _client(conf: cfg.Config) -> Any:
    try:
        from scaivault_sdk import SyncScaiVaultClient
    except ImportError:
        raise SystemExit("error: the user CLI needs the SDK: pip install ./sdk (package scaivault-sdk)") from None
    return SyncScaiVaultClient(conf.url, token=conf.token, tenant_id=conf.tenant_id)


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Resolve config, build the client, run ``handler``, map every failure to its exit code."""

    def run(args: argparse.Namespace) -> int:
        conf = cfg.resolve()
        if conf.debug:
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        client = None
        try:
            client = _client(conf)
            args._config = conf
            return handler(args, client)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:
            if conf.debug:
                traceback.print_exc()
            code = getattr(exc, "code", None)
            request_id = getattr(exc, "request_id", None)
            text = getattr(exc, "message", None) or str(exc)
            print(f"error: {code + ': ' if isinstance(code, str) else ''}{text}"
                  + (f" (request_id {request_id})" if request_id else ""), file=sys.stderr)
            return exit_code(exc)
        finally:
            if client is not None:
                client.close()

    return run


def _secrets(args: argparse.Namespace, client: Any) -> Any:
    """Tenant secrets, or the partner's shared secrets with ``--partner`` / ``SCAIVAULT_PARTNER_ID``."""
    partner = getattr(args, "partner", False) or args._config.partner_id
    if not partner:
        return client.secrets
    if args._config.partner_id and not getattr(args, "partner", False):
        seen = client.auth.whoami().partner_id
        if seen != args._config.partner_id:
            raise UsageError(f"SCAIVAULT_PARTNER_ID={args._config.partner_id} but the token's partner is {seen}")
    return client.partner_secrets


# ------------------------------------------------------------------------------------------------ auth


def _login(args: argparse.Namespace, client: Any) -> int:
    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    if not token:
        raise UsageError("--token is empty")
    conf = args._config
    url = args.url or conf.url
    from scaivault_sdk import SyncScaiVaultClient

    with SyncScaiVaultClient(url, token=token, tenant_id=args.tenant or conf.tenant_id) as probe:
        me = probe.auth.whoami()  # refuse to store a token the server does not accept (exit 2)
    values = cfg.load_file()
    values.update({"url": url, "token": token})
    if args.tenant:
        values["tenant_id"] = args.tenant
    path = cfg.save_file(values)
    if args.json:
        print_json({"identity_id": me.identity_id, "tenant_id": me.tenant_id, "config": str(path)})
    else:
        print(f"Logged in to {url} as {me.identity_id} (tenant {me.tenant_id}); token saved in {path}")
    return OK


def _logout(args: argparse.Namespace, client: Any) -> int:
    values = cfg.load_file()
    values.pop("token", None)
    cfg.save_file(values)
    print("token removed from " + str(cfg.config_path()))
    return OK


def _whoami(args: argparse.Namespace, client: Any) -> int:
    me = client.auth.whoami()
    if args.json:
        print_json(me.raw)
    else:
        print_fields([("identity", me.identity_id), ("type", me.identity_type), ("tenant", me.tenant_id),
                      ("partner", me.partner_id), ("scopes", me.scopes), ("groups", me.groups),
                      ("roles", me.roles), ("token expires", me.token_expires_at)])
    return OK


def _tokens_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.auth.list_tokens(all_identities=args.all))
    if args.json:
        print_json({"tokens": [t.raw for t in rows]})
    else:
        print_table(["id", "name", "scopes", "expires_at"], [(t.id, t.name, t.scopes, t.expires_at) for t in rows])
    return OK


def _tokens_create(args: argparse.Namespace, client: Any) -> int:
    t = client.auth.create_token(args.name, args.scopes.split(","), expires_in=args.expires_in)
    if args.json:
        print_json({**t.raw, "token": t.token})
    else:
        print_fields([("id", t.id), ("name", t.name), ("scopes", t.scopes), ("expires_at", t.expires_at)])
        print(f"token (shown once): {t.token}")
    return OK


def _tokens_revoke(args: argparse.Namespace, client: Any) -> int:
    client.auth.revoke_token(args.token_id)
    print(f"revoked {args.token_id}")
    return OK


# ------------------------------------------------------------------------------------------------ secrets


def _read(args: argparse.Namespace, client: Any) -> int:
    secret = _secrets(args, client).read(args.path, version=args.version)
    data = secret.data
    if args.field:
        if not isinstance(data, dict) or args.field not in data:
            raise UsageError(f"field {args.field!r} is not in {args.path} (fields: "
                             f"{', '.join(sorted(data)) if isinstance(data, dict) else 'none'})")
        value = data[args.field]
        print(json.dumps(value) if args.json or not isinstance(value, str) else value)
        return OK
    if args.json:
        print_json(secret.raw)
        return OK
    print_fields([("path", secret.path), ("version", secret.version), ("type", secret.secret_type),
                  ("created_at", secret.created_at), ("expires_at", secret.expires_at)])
    if isinstance(data, dict):
        print()
        print_table(["key", "value"], [(k, v) for k, v in data.items()])
    else:
        print(json.dumps(data))
    return OK


def _parse_pairs(pairs: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    stdin_used = False
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        if value == "-":
            if stdin_used:
                raise UsageError("only one value can come from stdin (k=-)")
            stdin_used = True
            value = sys.stdin.read()
            value = value[:-1] if value.endswith("\n") else value
        data[key] = value
    return data


def _write(args: argparse.Namespace, client: Any) -> int:
    if args.json_file and args.pairs:
        raise UsageError("use either key=value pairs or --json-file, not both")
    if args.json_file:
        try:
            text = sys.stdin.read() if args.json_file == "-" else Path(args.json_file).read_text()
            data: Any = json.loads(text)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--json-file: {exc}") from None
    elif args.pairs:
        data = _parse_pairs(args.pairs)
    else:
        raise UsageError("nothing to write: give key=value pairs (k=- reads stdin) or --json-file")
    meta = _secrets(args, client).write(args.path, data, secret_type=args.type, expires_in=args.expires_in)
    if args.json:
        print_json(meta.raw)
    else:
        print(f"wrote {meta.path or args.path} version {meta.version}")
    return OK


def _list(args: argparse.Namespace, client: Any) -> int:
    rows = list(_secrets(args, client).list(args.prefix, limit=args.limit))
    return _print_meta(args, rows)


def _print_meta(args: argparse.Namespace, rows: list[Any]) -> int:
    if args.json:
        print_json({"secrets": [m.raw for m in rows]})
    else:
        print_table(["path", "type", "version", "updated_at", "expires_at"],
                    [(m.path, m.secret_type, m.version, m.updated_at, m.expires_at) for m in rows])
    return OK


def _expiring(args: argparse.Namespace, client: Any) -> int:
    if args.days < 0:
        raise UsageError("--days must be 0 or more")
    return _print_meta(args, list(_secrets(args, client).expiring(args.days, args.prefix)))


def _delete(args: argparse.Namespace, client: Any) -> int:
    _secrets(args, client).delete(args.path, permanent=args.hard)
    if args.json:
        print_json({"path": args.path, "deleted": True, "permanent": args.hard})
    else:
        print(f"{'permanently deleted' if args.hard else 'deleted (restorable)'} {args.path}")
    return OK


def _versions(args: argparse.Namespace, client: Any) -> int:
    rows = _secrets(args, client).versions(args.path)
    if args.json:
        print_json({"path": args.path, "versions": [v.raw for v in rows]})
    else:
        print_table(["version", "created_at", "created_by", "current", "expires_at", "destroyed"],
                    [(v.version, v.created_at, v.created_by, v.is_current, v.expires_at, v.destroyed) for v in rows])
    return OK


def _metadata(args: argparse.Namespace, client: Any) -> int:
    m = _secrets(args, client).read_metadata(args.path)
    if args.json:
        print_json(m.raw)
    else:
        print_fields([("path", m.path), ("type", m.secret_type), ("version", m.version),
                      ("versions", m.version_count), ("metadata", m.metadata), ("updated_at", m.updated_at),
                      ("expires_at", m.expires_at), ("rotation", m.rotation_status)])
    return OK


def _rotate(args: argparse.Namespace, client: Any) -> int:
    result = _secrets(args, client).rotate(args.path)
    if args.json:
        print_json(result.raw)
    else:
        print(f"rotation of {args.path}: " + ", ".join(f"{k}={v}" for k, v in result.raw.items()))
    return OK


def _batch_read(args: argparse.Namespace, client: Any) -> int:
    paths = list(args.paths)
    if args.paths_file:
        src = sys.stdin if args.paths_file == "-" else open(args.paths_file)
        with src:
            paths += [line.strip() for line in src if line.strip()]
    if not paths:
        raise UsageError("no paths given")
    bar = Progress("reading", len(paths), args.progress)
    result = _secrets(args, client).batch_read(paths, progress=bar.update)
    bar.finish()
    if args.json:
        print_json({"secrets": {p: s.raw for p, s in result.secrets.items()},
                    "errors": {p: {"code": e.code, "message": e.message} for p, e in result.errors.items()}})
    else:
        print_table(["path", "version", "result"],
                    [(p, s.version, "ok") for p, s in result.secrets.items()]
                    + [(p, None, f"{e.code}: {e.message}") for p, e in result.errors.items()])
    return OK


# ------------------------------------------------------------------------------------------------ policies


def _policies_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.policies.list(include_inactive=args.all))
    if args.json:
        print_json({"policies": [p.raw for p in rows]})
    else:
        print_table(["id", "name", "rules", "bindings", "active"],
                    [(p.id, p.name, p.raw.get("rule_count"), p.raw.get("binding_count"), p.is_active)
                     for p in rows])
    return OK


def _policies_get(args: argparse.Namespace, client: Any) -> int:
    p = client.policies.get(args.policy_id)
    if args.json:
        print_json(p.raw)
        return OK
    print_fields([("id", p.id), ("name", p.name), ("description", p.description), ("active", p.is_active)])
    print()
    print_table(["path_pattern", "permissions", "conditions"],
                [(r.get("path_pattern"), r.get("permissions"), r.get("conditions")) for r in p.rules])
    return OK


def _policies_test(args: argparse.Namespace, client: Any) -> int:
    r = client.policies.test(args.identity, args.path, args.permission, source_ip=args.source_ip,
                             mfa_verified=True if args.mfa else None)
    if args.json:
        print_json(r.raw)
    else:
        print_fields([("allowed", r.allowed)] + [(k, v) for k, v in r.raw.items() if k != "allowed"])
    return OK


# ------------------------------------------------------------------------------------------------ audit


def _audit_filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"action": args.action, "identity_id": args.identity, "path_prefix": args.path_prefix,
            "from_": getattr(args, "since", None)}


def _audit_tail(args: argparse.Namespace, client: Any) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    filters = _audit_filters(args)
    if args.follow:
        entries = client.audit.tail(initial=args.limit, poll_interval=args.interval, **filters)
    else:
        entries = reversed(list(client.audit.logs(limit=args.limit, **filters)))
    for e in entries:
        if args.json:
            print(json.dumps(e.raw), flush=True)
        else:
            print(f"{e.raw.get('timestamp')}  {'ok  ' if e.success else 'FAIL'}  {e.action:<16} "
                  f"{e.identity_id or '-':<32} {e.secret_path or e.raw.get('resource_id') or '-'}", flush=True)
    return OK


def _audit_export(args: argparse.Namespace, client: Any) -> int:
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    bar = Progress("exporting", args.limit, args.progress)
    try:
        for entry in client.audit.export(limit=args.limit, progress=bar.update, to=args.until,
                                         **_audit_filters(args)):
            out.write(json.dumps(entry) + "\n")
    finally:
        bar.finish()
        if out is not sys.stdout:
            out.close()
    if args.output != "-":
        print(f"exported {bar.done} entries to {args.output}", file=sys.stderr)
    return OK


# ------------------------------------------------------------------------------------------------ register


def _common(json_flag: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return p


def _partner(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partner", action="store_true",
                   help="the partner's shared secrets (/v1/partner/secrets); also SCAIVAULT_PARTNER_ID")


def _progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    j = _common()

    auth = command_group(sub, "auth", "log in and inspect the current identity (user CLI)")
    p = auth.add_parser("login", parents=[j], help="store a token (and URL) in ~/.scaivault/config.json (0600)")
    p.add_argument("--token", required=True, help="the token; '-' reads it from stdin (keeps it out of history)")
    p.add_argument("--url", help=f"API URL (default SCAIVAULT_URL or {cfg.DEFAULT_URL})")
    p.add_argument("--tenant", help="tenant id to store as tenant_id")
    p.set_defaults(func=_run(_login))
    p = auth.add_parser("logout", help="remove the stored token")
    p.set_defaults(func=_run(_logout))
    p = auth.add_parser("whoami", parents=[j], help="how the server sees the current token")
    p.set_defaults(func=_run(_whoami))
    tokens = auth.add_parser("tokens", help="personal access tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="COMMAND")
    p = tokens.add_parser("list", parents=[j], help="your tokens (--all: the tenant's, needs admin)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=_run(_tokens_list))
    p = tokens.add_parser("create", parents=[j], help="create a token; its value is printed once")
    p.add_argument("name")
    p.add_argument("--scopes", required=True, help="comma-separated, e.g. secrets:read,secrets:list")
    p.add_argument("--expires-in", help="duration such as 30d (default 90d)")
    p.set_defaults(func=_run(_tokens_create))
    p = tokens.add_parser("revoke", help="revoke a token by id")
    p.add_argument("token_id")
    p.set_defaults(func=_run(_tokens_revoke))

    sec = command_group(sub, "secrets", "read, write and manage secrets (user CLI)")
    p = sec.add_parser("read", parents=[j], help="print a secret (--field F: one value, raw)")
    p.add_argument("path")
    p.add_argument("--version", type=int, help="a specific version (default latest)")
    p.add_argument("--field", help="print only this key of the data")
    _partner(p)
    p.set_defaults(func=_run(_read))
    p = sec.add_parser("write", parents=[j], help="write a new version: k=v ... (k=- reads stdin) or --json-file")
    p.add_argument("path")
    p.add_argument("pairs", nargs="*", metavar="k=v")
    p.add_argument("--type", help="secret_type, e.g. kv, json, api_key, password")
    p.add_argument("--json-file", help="the data as a JSON document ('-' for stdin)")
    p.add_argument("--expires-in", help="duration such as 30d")
    _partner(p)
    p.set_defaults(func=_run(_write))
    p = sec.add_parser("list", parents=[j], help="list secrets you may list (sorted by path)")
    p.add_argument("--prefix")
    p.add_argument("--limit", type=int, help="at most N (default: all, fetched page by page)")
    _partner(p)
    p.set_defaults(func=_run(_list))
    p = sec.add_parser("delete", parents=[j], help="soft delete (restorable); --hard purges every version")
    p.add_argument("path")
    p.add_argument("--hard", action="store_true")
    _partner(p)
    p.set_defaults(func=_run(_delete))
    p = sec.add_parser("versions", parents=[j], help="the retained versions of a secret")
    p.add_argument("path")
    _partner(p)
    p.set_defaults(func=_run(_versions))
    p = sec.add_parser("metadata", parents=[j], help="metadata without the value")
    p.add_argument("path")
    _partner(p)
    p.set_defaults(func=_run(_metadata))
    p = sec.add_parser("rotate", parents=[j], help="rotate now through the secret's rotation policy")
    p.add_argument("path")
    _partner(p)
    p.set_defaults(func=_run(_rotate))
    p = sec.add_parser("expiring", parents=[j], help="secrets expiring within --days N")
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--prefix")
    _partner(p)
    p.set_defaults(func=_run(_expiring))
    p = sec.add_parser("batch-read", parents=[j], help="read many paths (100 per request) with a progress bar")
    p.add_argument("paths", nargs="*")
    p.add_argument("--paths-file", help="one path per line ('-' for stdin)")
    _partner(p)
    _progress(p)
    p.set_defaults(func=_run(_batch_read))

    pol = command_group(sub, "policies", "access policies (user CLI)")
    p = pol.add_parser("list", parents=[j], help="policies of the tenant")
    p.add_argument("--all", action="store_true", help="include inactive policies")
    p.set_defaults(func=_run(_policies_list))
    p = pol.add_parser("get", parents=[j], help="one policy with its rules")
    p.add_argument("policy_id")
    p.set_defaults(func=_run(_policies_get))
    p = pol.add_parser("test", parents=[j], help="dry run: would IDENTITY get PERMISSION on PATH? (exit 0 either way)")
    p.add_argument("--identity", required=True, help="e.g. user:alice@acme.example, sa:ci, group:sre")
    p.add_argument("--path", required=True)
    p.add_argument("--permission", required=True, choices=PERMISSIONS)
    p.add_argument("--source-ip")
    p.add_argument("--mfa", action="store_true", help="evaluate as if MFA was verified")
    p.set_defaults(func=_run(_policies_test))

    aud = command_group(sub, "audit", "audit log: tail/export (user, via the API); verify/seal/prune (operator)")
    p = aud.add_parser("tail", parents=[j], help="the latest entries (-f keeps following)")
    p.add_argument("-n", "--limit", type=int, default=20)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--interval", type=float, default=2.0, help="poll interval with --follow (seconds)")
    p.add_argument("--action")
    p.add_argument("--identity")
    p.add_argument("--path-prefix")
    p.add_argument("--since", help="ISO-8601 start")
    p.set_defaults(func=_run(_audit_tail))
    p = aud.add_parser("export", help="stream entries as NDJSON (audit:export), with a progress counter")
    p.add_argument("-o", "--output", default="-", help="file (default stdout)")
    p.add_argument("--limit", type=int)
    p.add_argument("--action")
    p.add_argument("--identity")
    p.add_argument("--path-prefix")
    p.add_argument("--since", help="ISO-8601 start (inclusive)")
    p.add_argument("--until", help="ISO-8601 end (exclusive)")
    _progress(p)
    p.set_defaults(func=_run(_audit_export))

    from cli.user import completion, events, lifecycle

    lifecycle.register(sub, _run, j)
    events.register(sub, _run, j)
    completion.register(sub)


__all__ = ["AUTH", "VALIDATION", "register"]
