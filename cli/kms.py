"""``scaivault kms ...``: key-hierarchy maintenance (docs/crypto.md "Rotation", docs/secrets.md).

* ``scaivault kms rotate [--only-stale]``: re-wrap every partner key under the KMS's *current* root key
  (rotate the root in the KMS or the local key file first). Payloads and tenant keys are untouched.
* ``scaivault kms rotate-partner PARTNER_ID`` / ``scaivault kms rotate-tenant TENANT_ID``: new key version;
  new writes seal under it, old versions stay readable.

Each command broadcasts a cache invalidation to running API processes over Redis (best effort).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from core.settings import get_settings


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from crypto.errors import CryptoError
    from db.engine import Database
    from repositories import tenants
    from services import keys

    settings = get_settings()
    db = Database(settings, pool_size=2, application_name="scaivault-cli")
    redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        keyring = keys.build_keyring(settings, db)
        if args.kms_command == "rotate":
            report = await keys.rotate_root(keyring, redis, only_stale=args.only_stale)
            return {"kms_key_id": report.kms_key_id, "rewrapped": report.rewrapped, "skipped": report.skipped}
        if args.kms_command == "rotate-partner":
            kek = await keys.rotate_partner(keyring, redis, args.partner_id)
            return {"partner_id": args.partner_id, "version": kek.version}
        partner_id = args.partner
        if partner_id is None:
            async with db.raw() as conn:
                row = await tenants.get_tenant(conn, args.tenant_id)
            if row is None:
                raise CryptoError(f"tenant {args.tenant_id} is unknown; pass --partner")
            partner_id = row["partner_id"]
        kek = await keys.rotate_tenant(keyring, redis, args.tenant_id, partner_id)
        return {"tenant_id": args.tenant_id, "partner_id": partner_id, "version": kek.version}
    finally:
        await redis.aclose()
        await db.dispose()


def _kms(args: argparse.Namespace) -> int:
    from crypto.errors import CryptoError

    try:
        result = asyncio.run(_run(args))
    except CryptoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("kms", help="key hierarchy maintenance (root re-wrap, partner/tenant key rotation)")
    ksub = p.add_subparsers(dest="kms_command", required=True)
    r = ksub.add_parser("rotate", help="re-wrap every partner key under the current root key (no re-encryption)")
    r.add_argument("--only-stale", action="store_true", help="skip rows already wrapped by the current root key")
    rp = ksub.add_parser("rotate-partner", help="create the next partner key version")
    rp.add_argument("partner_id")
    rt = ksub.add_parser("rotate-tenant", help="create the next tenant key version")
    rt.add_argument("tenant_id")
    rt.add_argument("--partner", help="the tenant's partner (default: looked up in the tenants table)")
    p.set_defaults(func=_kms)
