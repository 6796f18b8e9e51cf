"""Principal enrichment from the identity cache, for user tokens (JWTs and personal access tokens).

For a personal access token this is the *only* source of roles and groups: a PAT carries the identity and its
scopes, never a copy of the creator's roles or groups, so a demotion, a removed membership, a suspension or a
deletion in ScaiKey applies to the PAT on the next request after the webhook or sync that records it. A PAT of
a user the cache holds as deleted is refused (401 ``token_revoked``, details.reason ``user_deleted``).

Adds the cached admin role (``roles``) and live group memberships (``group:<name>``) to a user principal and
refuses users ScaiKey reports SUSPENDED (403 ``access_denied``, details.reason ``user_suspended``). At most one
DB round trip per (tenant, user) per IDENTITY_CACHE_TTL_SECONDS; a warm request is a dict lookup. Entries are
dropped at once when a sync or webhook changes the tenant (Redis pub/sub on ``scaivault:identity-invalidate``);
the TTL bounds staleness if Redis is down.

BOOTSTRAP_SUPER_ADMIN: a listed user who signs in and is already in the cache becomes super_admin
(admin_role_source=bootstrap) on that first request: ``user:usr_...`` in any tenant, ``user:<email>`` only in
OPERATOR_TENANT_ID (an email is unique per tenant only; any tenant admin can create one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from auth.principal import ROLES, Principal
from core.background import cancel_and_wait, subscribe_forever
from core.errors import AppError
from core.settings import Settings
from db.engine import Database
from repositories.identity import admins as admins_repo
from repositories.identity import cache as cache_repo

log = logging.getLogger("scaivault.identity")
INVALIDATE_CHANNEL = "scaivault:identity-invalidate"
_MAX_ENTRIES = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class CachedIdentity:
    found: bool
    status: str = "ACTIVE"
    role: str | None = None
    groups: tuple[str, ...] = ()
    deleted: bool = False  # the cache has the user, soft-deleted (ScaiKey user.deleted, or gone from the sync)


_MISSING = CachedIdentity(found=False)


class IdentityEnricher:
    def __init__(self, settings: Settings, db: Database, redis: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.ttl = settings.identity_cache_ttl_seconds
        self._cache: dict[tuple[str, str], tuple[float, CachedIdentity]] = {}
        self._task: asyncio.Task[None] | None = None
        emails, ids = _bootstrap(settings)
        self._bootstrap_emails, self._bootstrap_ids = {e.lower() for e in emails}, set(ids)

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[0] == tenant_id]:
                self._cache.pop(key, None)

    async def __call__(self, principal: Principal) -> Principal:
        if principal.identity_type != "user" or not principal.tenant_id:
            return principal
        email = principal.identity_id[5:] if principal.identity_id.startswith("user:") else None
        key = (principal.tenant_id, principal.subject)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is None or hit[0] <= now:
            entry = await self._load(principal.tenant_id, principal.subject, email)
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, entry)
        else:
            entry = hit[1]
        if not entry.found:
            return principal  # never mirrored: a JWT keeps its claims; a PAT has no roles or groups at all
        if entry.deleted:
            # A PAT is only as good as the identity behind it: offboarding ends it at once, in every process
            # (this cache is invalidated over Redis by the webhook / sync that deleted the user). A JWT is refused
            # when ScaiKey itself said user.deleted (status DELETED); a user a sync merely did not see (member-walk
            # mode misses users in no group) keeps its JWT, which ScaiKey introspection re-checks (docs/auth.md).
            if principal.token_kind == "pat" or entry.status == "DELETED":
                raise AppError("token_revoked", "this user no longer exists in ScaiKey", {"reason": "user_deleted"})
            return principal
        if entry.status == "SUSPENDED":
            raise AppError("access_denied", "this user is suspended in ScaiKey", {"reason": "user_suspended"})
        roles = list(principal.roles)
        if entry.role in ROLES and entry.role not in roles:
            roles.append(entry.role)
        groups = list(principal.groups)
        for g in entry.groups:
            if g not in groups:
                groups.append(g)
        if len(roles) == len(principal.roles) and len(groups) == len(principal.groups):
            return principal
        return dataclasses.replace(principal, roles=tuple(roles), groups=tuple(groups))

    async def lookup(self, tenant_id: str, identity_id: str) -> CachedIdentity:
        """What a request by ``identity_id`` (``user:<email>`` or ``user:<usr_id>``) in the tenant would find here:
        the same query and group mapping as a request, read fresh, without bootstrap promotion and without
        touching the cache (the policy dry run, services/policies.py ``tested_identity``)."""
        if not identity_id.startswith("user:"):
            return _MISSING  # service accounts and groups have no cached memberships
        ref = identity_id[5:]
        email = ref if "@" in ref else None
        return await self._load(tenant_id, "" if email else ref, email, promote=False)

    async def _load(self, tenant_id: str, subject: str, email: str | None, *,
                    promote: bool = True) -> CachedIdentity:
        async with self.db.raw() as conn:
            row = await cache_repo.principal_row(conn, tenant_id, subject, email)
            if row is None:
                return _MISSING
            if row["deleted_at"] is not None:
                return CachedIdentity(found=True, deleted=True, status=row["status"])
            role = row["admin_role"]
            if not promote:
                return CachedIdentity(found=True, status=row["status"], role=role,
                                      groups=tuple(sorted(f"group:{g}" for g in row["group_names"])))
            # user ids are globally unique; an email only identifies the bootstrap admin in the operator tenant
            by_email = (tenant_id == self.settings.operator_tenant_id != ""
                        and row["email"].lower() in self._bootstrap_emails)
            if role != "super_admin" and (row["id"] in self._bootstrap_ids or by_email):
                await admins_repo.apply_bootstrap(conn, tenant_id, [row["email"]] if by_email else [], [row["id"]])
                role = "super_admin"
                log.info("bootstrap super admin promoted at sign-in", extra={"tenant_id": tenant_id,
                                                                              "user_id": row["id"]})
        return CachedIdentity(found=True, status=row["status"], role=role,
                              groups=tuple(sorted(f"group:{g}" for g in row["group_names"])))

    # --- cross-process invalidation -------------------------------------------------------------------
    async def publish(self, tenant_id: str) -> None:
        self.invalidate(tenant_id)
        if self.redis is not None:
            try:
                await self.redis.publish(INVALIDATE_CHANNEL, tenant_id)
            except Exception:
                log.debug("identity invalidation broadcast failed; other processes expire by TTL", exc_info=True)

    def start(self) -> None:
        if self.redis is None:
            return

        self._task = subscribe_forever(self.redis, INVALIDATE_CHANNEL, self.invalidate, self.invalidate)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


def bootstrap_identities(settings: Settings) -> tuple[list[str], list[str]]:
    """BOOTSTRAP_SUPER_ADMIN ``user:<email>`` / ``user:usr_...`` (comma-separated) -> (emails, user ids)."""
    emails: list[str] = []
    ids: list[str] = []
    for raw in settings.bootstrap_super_admin.split(","):
        ref = raw.strip()
        if ref.startswith("user:"):
            ref = ref[5:]
        if ref:
            (emails if "@" in ref else ids).append(ref)
    return emails, ids


_bootstrap = bootstrap_identities
