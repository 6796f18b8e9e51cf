"""The ScaiKey -> identity-cache sync (scaikey.md §7.3), one tenant at a time.

1. Fetch a complete snapshot from ScaiKey *before* touching the cache: users by the ``effective_users`` fast
   path, or, on the exact documented 403 (``ScaiKeyScopeError``), by the ``member_walk`` (union of every group's
   members); groups over all pages; each group's members (DIRECT and NESTED) concurrently. Any other error
   aborts the run, so an outage or broken pagination never reaches the cache.
2. Reconcile in one transaction: upsert/revive, soft-delete what disappeared (never when the snapshot has zero
   users or groups while the cache still has some: that is reported as a warning), elect super admins from
   SUPER_ADMIN_GROUPS, apply BOOTSTRAP_SUPER_ADMIN, count super admins.

The stats object has every key of ScaiFlow's (plus ``warnings`` and ``pages``), see docs/identity.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from auth.identity_enrichment import bootstrap_identities
from clients.scaikey import ScaiKeyClient, ScaiKeyScopeError
from core.settings import Settings
from db.engine import Database
from repositories.identity import admins as admins_repo
from repositories.identity import cache as cache_repo
from repositories.identity import directory as directory_repo
from repositories.identity import webhook_events as webhook_events_repo
from repositories.identity.cache import GroupIn, MembershipIn, UserIn
from repositories.tenants import placeholder_partner
from services.keys import keyring_for

log = logging.getLogger("scaivault.identity")

Heartbeat = Callable[[str], None]


def empty_stats() -> dict[str, Any]:
    return {
        "skipped_reason": None, "users_method": None, "users_seen": 0, "users_added": 0, "users_undeleted": 0,
        "users_soft_deleted": 0, "groups_seen": 0, "groups_added": 0, "groups_undeleted": 0,
        "groups_soft_deleted": 0, "memberships_seen": 0, "memberships_added": 0, "memberships_soft_deleted": 0,
        "super_admin_count": 0, "super_admins_group_promoted": 0, "super_admins_group_demoted": 0,
        "duration_seconds": 0.0, "pages": 0, "warnings": [],
    }


def super_admin_group_refs(settings: Settings) -> list[str]:
    return [g.strip() for g in settings.super_admin_groups.split(",") if g.strip()]


# --------------------------------------------------------------------------------------------- snapshot
@dataclass
class Snapshot:
    users_method: str
    users: dict[str, UserIn] = field(default_factory=dict)
    groups: list[GroupIn] = field(default_factory=list)
    memberships: list[MembershipIn] = field(default_factory=list)
    pages: int = 0


def _user_in(item: dict[str, Any]) -> UserIn | None:
    uid = item.get("user_id") or item.get("id")
    email = item.get("email")
    if not uid or not email:
        return None
    name = item.get("display_name") or f"{item.get('first_name') or ''} {item.get('last_name') or ''}".strip()
    mfa = item.get("mfa_enabled")
    return UserIn(id=str(uid), email=str(email), display_name=str(name or email),
                  status=str(item.get("status") or "ACTIVE").upper(), mfa_enabled=None if mfa is None else bool(mfa))


def _group_in(item: dict[str, Any]) -> GroupIn:
    return GroupIn(id=str(item["id"]), name=str(item.get("name") or item["id"]),
                   group_type=str(item.get("group_type") or "SECURITY"), description=str(item.get("description") or ""))


class SnapshotFetcher:
    """Reads one tenant's directory from ScaiKey; ``heartbeat`` is called after every page."""

    def __init__(self, client: ScaiKeyClient, settings: Settings, heartbeat: Heartbeat | None = None) -> None:
        self.client = client
        self.per_page = settings.scaikey_page_size or None
        self.app_id = settings.scaikey_application_id or "me"
        self.concurrency = settings.scaikey_sync_concurrency
        self.heartbeat = heartbeat
        self.pages = 0

    def _on_page(self, what: str) -> Callable[[int], None]:
        def on_page(page: int) -> None:
            self.pages += 1
            if self.heartbeat is not None:
                self.heartbeat(f"{what} page {page}")
        return on_page

    async def fetch(self, tenant_id: str) -> Snapshot:
        admin_path = await self.client.is_platform_admin()
        users: dict[str, UserIn] | None = {}
        method = "effective_users"
        try:
            async for item in self.client.effective_users(tenant_id, self.app_id, per_page=self.per_page,
                                                          on_page=self._on_page("effective-users")):
                u = _user_in(item)
                if u is not None:
                    users[u.id] = u  # type: ignore[index]
        except ScaiKeyScopeError:
            method, users = "member_walk", None  # the documented fallback; any other error propagates
        raw_groups = [g async for g in self.client.list_groups(
            tenant_id, admin_path=admin_path, per_page=self.per_page, on_page=self._on_page("groups"))]
        groups = [_group_in(g) for g in raw_groups]
        members = await self._members(tenant_id, [g.id for g in groups], admin_path)
        snap = Snapshot(users_method=method, groups=groups)
        walk: dict[str, UserIn] = {}
        for gid, items in members.items():
            for item in items:
                u = _user_in(item)
                if u is None:
                    continue
                walk.setdefault(u.id, u)
                kind = str(item.get("membership_type") or "DIRECT").upper()
                snap.memberships.append(MembershipIn(
                    group_id=gid, member_type="user", member_id=u.id,
                    membership_type="NESTED" if kind != "DIRECT" else "DIRECT",
                    via_group_id=item.get("via_group_id")))
        snap.users = walk if users is None else users
        known = {g.id for g in groups}
        snap.memberships = [m for m in snap.memberships if m.member_id in snap.users]
        for g in raw_groups:
            for child in g.get("member_group_ids") or []:
                if child in known:
                    snap.memberships.append(MembershipIn(group_id=str(g["id"]), member_type="group",
                                                         member_id=str(child), membership_type="DIRECT"))
        snap.pages = self.pages
        return snap

    async def _members(self, tenant_id: str, group_ids: list[str],
                       admin_path: bool) -> dict[str, list[dict[str, Any]]]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(gid: str) -> tuple[str, list[dict[str, Any]]]:
            async with sem:
                items = [m async for m in self.client.list_members(
                    tenant_id, gid, admin_path=admin_path, per_page=self.per_page,
                    on_page=self._on_page(f"members of {gid}"))]
                return gid, items

        tasks = [asyncio.ensure_future(one(gid)) for gid in group_ids]
        try:
            return dict(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


# --------------------------------------------------------------------------------------------- reconcile
async def apply_snapshot(db: Database, settings: Settings, tenant_id: str, snap: Snapshot,
                         stats: dict[str, Any]) -> dict[str, Any]:
    """Write ``snap`` into the cache in one transaction; fills ``stats``."""
    users = list(snap.users.values())
    stats.update(users_method=snap.users_method, users_seen=len(users), groups_seen=len(snap.groups),
                 memberships_seen=len(snap.memberships), pages=snap.pages)
    warnings: list[str] = stats["warnings"]
    async with db.raw() as conn, conn.transaction():
        stats["users_added"], stats["users_undeleted"] = await cache_repo.reconcile_users(conn, tenant_id, users)
        if users or await cache_repo.live_count(conn, tenant_id, "identity_users") == 0:
            stats["users_soft_deleted"] = await cache_repo.soft_delete_users_except(conn, tenant_id, list(snap.users))
        else:
            warnings.append("ScaiKey returned zero users while the cache has some; soft-delete skipped "
                            "(check the app's assignments and the credentials' scopes)")
        stats["groups_added"], stats["groups_undeleted"] = await cache_repo.reconcile_groups(conn, tenant_id, snap.groups)
        if snap.groups or await cache_repo.live_count(conn, tenant_id, "identity_groups") == 0:
            stats["groups_soft_deleted"] = await cache_repo.soft_delete_groups_except(
                conn, tenant_id, [g.id for g in snap.groups])
            stats["memberships_added"], stats["memberships_soft_deleted"] = await cache_repo.reconcile_memberships(
                conn, tenant_id, snap.memberships)
        else:
            warnings.append("ScaiKey returned zero groups while the cache has some; soft-delete of groups and "
                            "memberships skipped (missing groups:read, or broken pagination)")
        await reconcile_admins(conn, settings, tenant_id, stats)
    return stats


def is_operator_tenant(settings: Settings, tenant_id: str) -> bool:
    """Only the configured OPERATOR_TENANT_ID may confer platform authority by group *name* or user *email*."""
    return bool(settings.operator_tenant_id) and tenant_id == settings.operator_tenant_id


async def reconcile_admins(conn: Any, settings: Settings, tenant_id: str, stats: dict[str, Any] | None = None) -> int:
    """Super-admin election + bootstrap + count (also run after membership webhooks). Returns the count.

    Group ids and user ids are ScaiKey-assigned and globally unique, so they match in any tenant; names and
    emails are chosen by whoever administers a tenant, so they match only in the operator tenant (docs/identity.md
    "Super admins")."""
    operator = is_operator_tenant(settings, tenant_id)
    promoted, demoted = await admins_repo.elect_super_admins(conn, tenant_id, super_admin_group_refs(settings),
                                                      match_names=operator)
    emails, ids = bootstrap_identities(settings)
    if not operator:
        await admins_repo.demote_foreign_bootstrap(conn, tenant_id, emails, ids)
    await admins_repo.apply_bootstrap(conn, tenant_id, emails if operator else [], ids)
    count = await admins_repo.super_admin_count(conn, tenant_id)
    if stats is not None:
        stats.update(super_admins_group_promoted=promoted, super_admins_group_demoted=demoted,
                     super_admin_count=count)
        if emails and not settings.operator_tenant_id:
            stats["warnings"].append(
                "BOOTSTRAP_SUPER_ADMIN lists emails but OPERATOR_TENANT_ID is unset: emails match nobody (use "
                "user:usr_<id>, or set OPERATOR_TENANT_ID to the operator's ScaiKey tenant)")
        if count == 0:
            stats["warnings"].append(
                "no super admin left in this tenant: grant one with `scaivault admin grant <email> --role "
                "super_admin`, or set SUPER_ADMIN_GROUPS to a ScaiKey group id (a name counts only in "
                "OPERATOR_TENANT_ID)")
    return count


async def sync_tenant(db: Database, settings: Settings, client: ScaiKeyClient, tenant_id: str,
                      heartbeat: Heartbeat | None = None) -> dict[str, Any]:
    """Fetch then reconcile one tenant. Raises ``ScaiKeyError`` (cache untouched) when ScaiKey fails."""
    started = time.monotonic()
    stats = empty_stats()
    if not client.has_credentials:
        stats["skipped_reason"] = "credentials_missing"
        return stats
    snap = await SnapshotFetcher(client, settings, heartbeat).fetch(tenant_id)
    await apply_snapshot(db, settings, tenant_id, snap, stats)
    stats["duration_seconds"] = round(time.monotonic() - started, 3)
    if stats["super_admin_count"] == 0:
        log.warning("identity sync left no super admin", extra={"tenant_id": tenant_id})
    return stats


# --------------------------------------------------------------------------------------------- directory
async def refresh_tenant_row(db: Database, client: ScaiKeyClient, tenant_id: str) -> None:
    """Best effort: mirror the tenant's own record (admin credentials only; tenant-tier ones cannot read it)."""
    from clients.scaikey import ScaiKeyStatusError

    try:
        t = await client.tenant(tenant_id)
    except ScaiKeyStatusError:
        return
    async with db.raw() as conn:
        await _upsert_tenant(conn, partial(keyring_for, client.settings, db), t)


async def _upsert_tenant(conn: Any, keyring: Any, t: dict[str, Any]) -> None:
    """A partner change re-wraps the tenant's keys in the same transaction (repositories/tenants.py move_tenant)."""
    await directory_repo.upsert_tenant(conn, id=str(t["id"]), keyring=keyring,
                             partner_id=str(t.get("partner_id") or placeholder_partner(str(t["id"]))),
                             name=str(t.get("name") or ""), slug=t.get("slug"),
                             status=str(t.get("status") or "ACTIVE").upper(), deleted=bool(t.get("deleted")))


async def sweep_directory(db: Database, admin: ScaiKeyClient, fallback: ScaiKeyClient, *,
                          partner_id: str | None) -> list[str]:
    """Mirror partners and tenants and return the tenant ids a full sync covers (scaikey.md §7.5).

    Admin-scoped credentials list every tenant (narrowed by ``partner_id``); otherwise the sync covers only the
    tenant of the (tenant-tier) sync credentials' own token."""
    from clients.scaikey import ScaiKeyStatusError

    try:
        tenants = [t async for t in admin.tenants(partner_id)]
    except ScaiKeyStatusError:
        claims = await fallback.token_claims()
        tid = claims.get("tenant_id")
        if not tid or (partner_id and claims.get("partner_id") not in (None, partner_id)):
            return []
        async with db.raw() as conn:
            if await directory_repo.tenant_partner(conn, tid) is None:
                await directory_repo.upsert_tenant(conn, id=str(tid), partner_id=str(claims.get("partner_id") or
                                         placeholder_partner(str(tid))), name="", slug=fallback.tenant_slug,
                                         status="ACTIVE", keyring=partial(keyring_for, admin.settings, db))
        return [str(tid)]
    partners: list[dict[str, Any]] = []
    try:
        partners = [p async for p in admin.partners()]
    except ScaiKeyStatusError:
        pass  # partner_admin-level credentials cannot list partners; tenants still name theirs
    async with db.raw() as conn, conn.transaction():
        for p in partners:
            if partner_id and p.get("id") != partner_id:
                continue
            await directory_repo.upsert_partner(conn, id=str(p["id"]), name=str(p.get("name") or ""), slug=p.get("slug"),
                                      region=p.get("region"), status=str(p.get("status") or "ACTIVE").upper())
        for t in tenants:
            await _upsert_tenant(conn, partial(keyring_for, admin.settings, db), t)
    return [str(t["id"]) for t in tenants if str(t.get("status") or "ACTIVE").upper() != "DELETED"]


# --------------------------------------------------------------------------------------------- housekeeping
def _register_sweeper() -> None:
    from services.housekeeping import sweeper

    @sweeper("prune_scaikey_webhook_events")
    async def prune_webhook_events(conn: Any, settings: Settings, limit: int) -> int:
        """Idempotency rows only need to outlive ScaiKey's redelivery window; keep them EVENT_RETENTION_DAYS."""
        return await webhook_events_repo.prune_webhook_events(conn, older_than_days=settings.event_retention_days, limit=limit)


_register_sweeper()
