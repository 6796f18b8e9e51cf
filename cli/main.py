"""``scaivault``: one command for users and operators (docs/cli.md). Operator commands call services or start
workflows and never contain SQL.

Feature modules add commands through ``COMMAND_MODULES``: each has ``register(subparsers)`` that adds a
sub-parser whose ``func(args) -> int`` runs it. User commands (``USER_MODULES``: auth, secrets, policies,
audit tail/export, completion) run on the SDK and import no server code; operator modules
(``OPERATOR_MODULES``: migrate, serve, worker, audit verify/seal/prune, kms, admin) are imported only when an
operator command, ``--help`` or ``completion`` is asked for. Usage errors exit 5 (validation), like every
other bad input (core.md §8.3 exit codes).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, NoReturn

USER_MODULES: list[str] = ["cli.user.commands"]
OPERATOR_MODULES: list[str] = ["cli.main", "cli.audit", "cli.identity", "cli.kms", "cli.doctor"]
COMMAND_MODULES: list[str] = USER_MODULES + OPERATOR_MODULES
OPERATOR_COMMANDS = {"migrate", "worker", "serve", "kms", "admin", "doctor"}
OPERATOR_AUDIT_COMMANDS = {"verify", "seal", "prune"}


def get_settings() -> Any:
    from core.settings import get_settings as settings

    return settings()


def _migrate(args: argparse.Namespace) -> int:
    from db import migrate

    url = args.database_url or get_settings().database_url
    if args.status:
        st = migrate.status(url)
        print(json.dumps(st.as_dict(), indent=2))
        return 0 if not st.unknown else 1
    try:
        action = migrate.move_to(url, args.target or "head")
    except migrate.SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    st = migrate.status(url)
    print(f"{action}: database now at {st.current or 'base'} (head {st.head})")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from worker.main import run

    asyncio.run(run(get_settings(), queues=args.queues))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from db import migrate

    settings = get_settings()
    try:  # check once here: with several uvicorn workers a failed start would otherwise exit 0
        migrate.ensure_schema(settings.database_url, settings.migrate_on_start)
    except migrate.SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                loop="uvloop", http="httptools", access_log=False,
                proxy_headers=False)  # X-Forwarded-For is honoured only from TRUSTED_PROXIES (api/deps.py)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("migrate", help="migrate the schema forward (default), to --target N, or show --status")
    p.add_argument("--target", help="revision number to move to (forward or back); 'base' empties the schema")
    p.add_argument("--status", action="store_true", help="print where the database stands and exit")
    p.add_argument("--database-url", help="defaults to DATABASE_URL")
    p.set_defaults(func=_migrate)

    w = sub.add_parser("worker", help="run the Temporal worker (every task queue, or --queues a,b)")
    w.add_argument("--queues", help="comma-separated task-queue concerns to serve")
    w.set_defaults(func=_worker)

    s = sub.add_parser("serve", help="run the API with uvicorn")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8443)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=_serve)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(5, f"{self.prog}: error: {message}\n")  # 5 = validation; argparse's 2 means "auth" here


def needs_operator(argv: list[str]) -> bool:
    """Whether parsing ``argv`` needs the operator modules (an operator command, help, or completion)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or "-h" in argv or "--help" in argv or words[0] == "completion":
        return True
    if words[0] == "audit":
        return len(words) < 2 or words[1] in OPERATOR_AUDIT_COMMANDS
    return words[0] in OPERATOR_COMMANDS


def build_parser(operator: bool = True) -> argparse.ArgumentParser:
    parser = _Parser(prog="scaivault", description="ScaiVault: user commands (auth, secrets, policies, audit tail) "
                     "and operator commands (migrate, serve, worker, audit verify, kms, admin)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in USER_MODULES + (OPERATOR_MODULES if operator else []):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(operator=needs_operator(argv)).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
