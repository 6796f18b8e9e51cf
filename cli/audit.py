"""``scaivault audit verify [--tenant T] [--require-keyed]`` / ``audit seal`` / ``audit prune``.

Every command uses the chain key derived from this process's AUDIT_HMAC_KEY (audit/chain.py): verify needs the
same key the sealer used, and a database superuser without it cannot produce blocks that verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from core.settings import get_settings


async def _with_conn(fn: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(get_settings().asyncpg_dsn)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def _key() -> bytes:
    from audit.sealer import settings_chain_key

    return settings_chain_key(get_settings())


def _verify(args: argparse.Namespace) -> int:
    from audit.sealer import verify_all, verify_tenant

    key = _key()

    async def run(conn: Any) -> list[Any]:
        if args.tenant:
            return [await verify_tenant(conn, args.tenant, key=key)]
        return await verify_all(conn, key=key)

    results = asyncio.run(_with_conn(run))
    unkeyed = [r.tenant_id for r in results if not r.keyed]
    ok = all(r.ok for r in results) and not (args.require_keyed and unkeyed)
    print(json.dumps({"ok": ok, "unkeyed_tenants": unkeyed, "tenants": [r.as_dict() for r in results]},
                     indent=2))
    return 0 if ok else 1


def _seal(args: argparse.Namespace) -> int:
    from audit.sealer import seal_all

    key = _key()
    n = asyncio.run(_with_conn(lambda conn: seal_all(conn, key=key)))
    print(f"sealed {n} entries")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from audit.sealer import prune_once

    settings = get_settings()
    days = args.retention_days if args.retention_days is not None else settings.audit_retention_days
    key = _key()

    async def run(conn: Any) -> int:
        total = 0
        while True:
            n = await prune_once(conn, days, settings.housekeeping_batch_size, key=key)
            total += n
            if n < settings.housekeeping_batch_size:
                return total

    print(f"pruned {asyncio.run(_with_conn(run))} entries older than {days} days")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from cli.groups import command_group

    asub = command_group(sub, "audit", "audit log: tail/export (user, via the API); verify/seal/prune (operator)")
    v = asub.add_parser("verify", help="verify hash chains; exit 1 and name the first broken link if any")
    v.add_argument("--tenant", help="only this tenant (default: every tenant with a chain)")
    v.add_argument("--require-keyed", action="store_true",
                   help="also fail when a tenant's chain head carries no MAC (legacy, not sealed since 0009)")
    v.set_defaults(func=_verify)
    s = asub.add_parser("seal", help="seal every committed, unsealed entry now")
    s.set_defaults(func=_seal)
    p = asub.add_parser("prune", help="delete sealed entries older than the retention (keeps a checkpoint)")
    p.add_argument("--retention-days", type=int, help="default AUDIT_RETENTION_DAYS")
    p.set_defaults(func=_prune)
