"""``scaivault admin grant <email|usr_id> --role super_admin [--tenant T]`` and ``scaivault admin revoke <email>``.

Manual grants (admin_role_source=manual) survive every sync: group election never demotes them. The user must
already be in the identity cache (run a sync first)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from auth.principal import ROLES
from core.settings import Settings, get_settings
from db.engine import Database
from repositories.identity import admins as admins_repo


async def grant(settings: Settings, email: str, role: str | None, tenant_id: str | None) -> int:
    """Returns an exit code: 0 done, 4 user not in the cache, 5 ambiguous (several tenants) or bad role."""
    if role is not None and role not in ROLES:
        print(f"error: unknown role {role!r}; choose from {', '.join(ROLES)}", file=sys.stderr)
        return 5
    db = Database(settings, pool_size=1, application_name="scaivault-cli")
    try:
        async with db.raw() as conn, conn.transaction():
            rows = [r for r in await admins_repo.find_users_by_email(conn, email, tenant_id) if r["deleted_at"] is None]
            if not rows:
                print(f"error: {email} is not in the identity cache"
                      f"{' of ' + tenant_id if tenant_id else ''}; run an identity sync first", file=sys.stderr)
                return 4
            if len(rows) > 1:
                tenants = ", ".join(r["tenant_id"] for r in rows)
                print(f"error: {email} exists in several tenants ({tenants}); pass --tenant", file=sys.stderr)
                return 5
            row = rows[0]
            await admins_repo.set_admin_role(conn, row["tenant_id"], row["id"], role, "manual" if role else None)
        print(f"{email} ({row['id']}, {row['tenant_id']}): role {role or 'none'} (manual)")
        return 0
    finally:
        await db.dispose()


def _grant(args: argparse.Namespace) -> int:
    return asyncio.run(grant(get_settings(), args.email, args.role, args.tenant))


def _revoke(args: argparse.Namespace) -> int:
    return asyncio.run(grant(get_settings(), args.email, None, args.tenant))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    admin = sub.add_parser("admin", help="identity-cache admin roles")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    g = asub.add_parser("grant", help="grant an admin role that survives sync (admin_role_source=manual)")
    g.add_argument("email", help="the user's email, or its ScaiKey user id (usr_...), which is unique everywhere")
    g.add_argument("--role", required=True, choices=list(ROLES))
    g.add_argument("--tenant", help="tenant id (needed when the email exists in several tenants)")
    g.set_defaults(func=_grant)
    r = asub.add_parser("revoke", help="remove a user's admin role")
    r.add_argument("email")
    r.add_argument("--tenant")
    r.set_defaults(func=_revoke)
