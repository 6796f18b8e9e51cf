"""ScaiKey -> ScaiVault webhook receiver rules (scaikey.md §5, §7.4).

- ``verify``: ``X-ScaiKey-Signature: t=<unix>,v1=<hex>`` = HMAC-SHA256(secret, "{t}.{raw body}"), compared in
  constant time, 300 s freshness either way. No secret configured -> 503 (fail-closed). Missing signature,
  stale timestamp or wrong MAC -> 401 ``invalid_signature``; a header that does not parse, or no timestamp at
  all -> 400 ``invalid_request``.
- ``normalize``: accepts the ScaiKey envelope (``event_id``/``event_type``/``timestamp``) and the ScaiFlow one
  (``id``/``type``/``created_at``), and both membership event families.
- ``apply``: user/group/membership/tenant/partner changes go straight into the cache in one transaction with
  the idempotency row (a redelivered ``event_id`` is a no-op). What cannot be applied exactly (application
  assignment changes, memberships of users the cache does not know, changes under nested groups) is reported
  back so the router signals the tenant's sync workflow.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core.errors import AppError
from core.settings import Settings
from db.engine import Database
from repositories.identity import cache as cache_repo
from repositories.identity import directory as directory_repo
from repositories.identity import webhook_events as webhook_events_repo
from repositories.pats import REVOKED_BY_USER_DELETED
from repositories.tenants import placeholder_partner
from services import pats
from services.identity.sync import reconcile_admins
from services.keys import keyring_for

TOLERANCE_SECONDS = 300
MEMBERSHIP_ALIASES = {"group_membership.added": "group.member_added",
                      "group_membership.removed": "group.member_removed"}
USER_EVENTS = {"user.created", "user.updated", "user.activated", "user.suspended", "user.mfa_enabled",
               "user.mfa_disabled", "user.password_changed", "user.deleted"}
GROUP_EVENTS = {"group.created", "group.updated", "group.deleted", "group.member_added", "group.member_removed"}
APP_EVENTS = {"application.user_assigned", "application.user_unassigned", "application.group_assigned",
              "application.group_unassigned"}
DIRECTORY_EVENTS = {"tenant.created", "tenant.updated", "tenant.deleted", "partner.created", "partner.updated",
                    "partner.deleted"}
HANDLED = USER_EVENTS | GROUP_EVENTS | APP_EVENTS | DIRECTORY_EVENTS


# --------------------------------------------------------------------------------------------- signature
def _parse_signature(header: str) -> tuple[int | None, list[str]]:
    ts: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise AppError("invalid_request", "X-ScaiKey-Signature must be 't=<unix>,v1=<hex>'")
        if key == "t":
            try:
                ts = int(value)
            except ValueError:
                raise AppError("invalid_request", "X-ScaiKey-Signature timestamp is not an integer") from None
        elif key == "v1":
            sigs.append(value.strip().lower())
    if not sigs:
        raise AppError("invalid_request", "X-ScaiKey-Signature carries no v1 signature")
    return ts, sigs


def check_configured_and_signed(settings: Settings, signature: str | None) -> str:
    """What can be refused from the headers alone: the receiver calls this before it reads the body."""
    if not settings.scaikey_webhook_secret.get_secret_value():
        raise AppError("webhook_secret_not_configured",
                       "SCAIKEY_WEBHOOK_SECRET is not set; the ScaiKey webhook receiver is disabled")
    if not signature:
        raise AppError("invalid_signature", "X-ScaiKey-Signature header is missing")
    return signature


def verify(settings: Settings, raw: bytes, signature: str | None, timestamp_header: str | None,
           now: float | None = None) -> None:
    signature = check_configured_and_signed(settings, signature)
    secret = settings.scaikey_webhook_secret.get_secret_value()
    ts, sigs = _parse_signature(signature)
    if ts is None and timestamp_header:
        try:
            ts = int(timestamp_header)
        except ValueError:
            raise AppError("invalid_request", "X-ScaiKey-Timestamp is not an integer") from None
    if ts is None:
        raise AppError("invalid_request", "the webhook carries no timestamp")
    now = time.time() if now is None else now
    if abs(now - ts) > TOLERANCE_SECONDS:
        raise AppError("invalid_signature", "webhook timestamp is outside the 300 s tolerance",
                       {"reason": "stale_timestamp"})
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, i.e. a 500, for `v1=é`)
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in sigs):
        raise AppError("invalid_signature", "webhook signature does not match")


# --------------------------------------------------------------------------------------------- envelope
@dataclass
class WebhookEvent:
    event_id: str
    event_type: str
    tenant_id: str | None
    partner_id: str | None
    resource_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


def normalize(body: Any, headers: dict[str, str]) -> WebhookEvent:
    if not isinstance(body, dict):
        raise AppError("invalid_request", "webhook body must be a JSON object")
    raw_data = body.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    event_id = body.get("event_id") or body.get("id") or headers.get("x-scaikey-event-id")
    event_type = body.get("event_type") or body.get("type") or headers.get("x-scaikey-event-type")
    if not event_id or not event_type:
        raise AppError("invalid_request", "webhook body needs event_id/id and event_type/type")
    event_type = MEMBERSHIP_ALIASES.get(str(event_type), str(event_type))
    raw_resource, raw_tenant = body.get("resource"), data.get("tenant")
    resource: dict[str, Any] = raw_resource if isinstance(raw_resource, dict) else {}
    tenant: dict[str, Any] = raw_tenant if isinstance(raw_tenant, dict) else {}
    tenant_id = body.get("tenant_id") or data.get("tenant_id") or tenant.get("id")
    if event_type.startswith("tenant.") and not tenant_id:
        tenant_id = data.get("id") or resource.get("id")
    return WebhookEvent(event_id=str(event_id), event_type=event_type, tenant_id=tenant_id,
                        partner_id=body.get("partner_id") or data.get("partner_id"),
                        resource_id=resource.get("id"), data=data)


# --------------------------------------------------------------------------------------------- apply
@dataclass
class Outcome:
    handled: bool
    duplicate: bool = False
    resync_reason: str | None = None  # the tenant's workflow should run a sync
    invalidate_tenant: bool = False  # principal caches / tenant resolver must forget this tenant
    # PATs revoked by this event (user.deleted): their hashes go to every API process's PAT cache (the
    # identity-cache invalidation alone misses a user the cache never mirrored)
    revoked_token_hashes: tuple[str, ...] = ()


def _user_id(ev: WebhookEvent) -> str | None:
    return ev.data.get("user_id") or ev.data.get("id") or ev.resource_id


def _display_name(d: dict[str, Any]) -> str | None:
    name = d.get("display_name") or f"{d.get('first_name') or ''} {d.get('last_name') or ''}".strip()
    return name or None


async def apply(db: Database, settings: Settings, ev: WebhookEvent) -> Outcome:
    handled = ev.event_type in HANDLED
    async with db.raw() as conn, conn.transaction():
        if not await webhook_events_repo.record_webhook_event(conn, event_id=ev.event_id, event_type=ev.event_type,
                                               tenant_id=ev.tenant_id, handled=handled):
            return Outcome(handled=handled, duplicate=True)
        if not handled:
            return Outcome(handled=False)
        if ev.event_type in DIRECTORY_EVENTS:
            return await _directory(conn, ev, partial(keyring_for, settings, db))
        if not ev.tenant_id:
            return Outcome(handled=True)  # nothing tenant-scoped to attach it to
        if ev.event_type in USER_EVENTS:
            return await _user(conn, settings, ev)
        if ev.event_type in APP_EVENTS:
            return Outcome(handled=True, resync_reason=f"webhook:{ev.event_type}")
        return await _group(conn, settings, ev)


async def _directory(conn: Any, ev: WebhookEvent, keyring: Any) -> Outcome:
    d = ev.data
    deleted = ev.event_type.endswith(".deleted")
    status = str(d.get("status") or "ACTIVE").upper()
    if ev.event_type.startswith("partner."):
        pid = d.get("id") or ev.resource_id or ev.partner_id
        if pid:
            await directory_repo.upsert_partner(conn, id=str(pid), name=str(d.get("name") or ""), slug=d.get("slug"),
                                      region=d.get("region"), status=status, deleted=deleted)
        return Outcome(handled=True)
    tid = d.get("id") or ev.resource_id or ev.tenant_id
    if tid:
        partner = d.get("partner_id") or ev.partner_id or await directory_repo.tenant_partner(conn, str(tid)) \
            or placeholder_partner(str(tid))
        # A new partner re-wraps the tenant's keys in this transaction (repositories/tenants.py move_tenant).
        await directory_repo.upsert_tenant(conn, id=str(tid), partner_id=str(partner), name=str(d.get("name") or ""),
                                 slug=d.get("slug"), status=status, deleted=deleted, keyring=keyring)
        ev.tenant_id = str(tid)
    return Outcome(handled=True, invalidate_tenant=True,
                   resync_reason="webhook:tenant.created" if ev.event_type == "tenant.created" else None)


async def _user(conn: Any, settings: Settings, ev: WebhookEvent) -> Outcome:
    uid, d, t = _user_id(ev), ev.data, ev.event_type
    assert ev.tenant_id is not None
    if not uid:
        return Outcome(handled=True, resync_reason=f"webhook:{t} without a user id")
    if t == "user.deleted":
        await cache_repo.soft_delete_user(conn, ev.tenant_id, str(uid))
        # Offboarding ends the user's PATs for good (the enricher already refuses them in every process once
        # the router's cache invalidation lands; this makes it permanent, even if the user id reappears), and the
        # router broadcasts the revoked hashes to every process's PAT cache (a user never mirrored has no
        # identity-cache entry whose invalidation would end them).
        revoked = await pats.revoke_for_user(conn, ev.tenant_id, str(uid), by=REVOKED_BY_USER_DELETED)
        await reconcile_admins(conn, settings, ev.tenant_id)
        return Outcome(handled=True, invalidate_tenant=True, revoked_token_hashes=tuple(revoked))
    status = {"user.suspended": "SUSPENDED", "user.activated": "ACTIVE"}.get(t) or (
        str(d["status"]).upper() if d.get("status") else None)
    mfa = {"user.mfa_enabled": True, "user.mfa_disabled": False}.get(t, d.get("mfa_enabled"))
    if t == "user.password_changed":
        return Outcome(handled=True)
    known = await cache_repo.user_exists(conn, ev.tenant_id, str(uid))
    if not known and not d.get("email"):
        return Outcome(handled=True, resync_reason=f"webhook:{t} for an unknown user")
    await cache_repo.upsert_user(conn, ev.tenant_id, id=str(uid), email=d.get("email"), display_name=_display_name(d),
                           status=status, mfa_enabled=None if mfa is None else bool(mfa),
                           revive=t in ("user.created", "user.activated"))
    return Outcome(handled=True, invalidate_tenant=True)


async def _group(conn: Any, settings: Settings, ev: WebhookEvent) -> Outcome:
    d, t = ev.data, ev.event_type
    tenant_id = ev.tenant_id
    assert tenant_id is not None
    gid = d.get("group_id") if t.startswith("group.member_") else (d.get("id") or d.get("group_id"))
    gid = gid or ev.resource_id
    if not gid:
        return Outcome(handled=True, resync_reason=f"webhook:{t} without a group id")
    gid = str(gid)
    if t in ("group.created", "group.updated"):
        await cache_repo.upsert_group(conn, tenant_id, id=gid, name=d.get("name"), group_type=d.get("group_type"),
                                description=d.get("description"))
        await reconcile_admins(conn, settings, tenant_id)  # a rename can match SUPER_ADMIN_GROUPS by name
        return Outcome(handled=True, invalidate_tenant=True)
    if t == "group.deleted":
        await cache_repo.soft_delete_group(conn, tenant_id, gid)
        await reconcile_admins(conn, settings, tenant_id)
        return Outcome(handled=True, invalidate_tenant=True, resync_reason="webhook:group.deleted")
    # membership added / removed
    member_group = d.get("member_group_id") or (d.get("member_id") if d.get("member_type") == "group" else None)
    member_user = None if member_group else (d.get("user_id") or d.get("member_id"))
    if not member_group and not member_user:
        return Outcome(handled=True, resync_reason=f"webhook:{t} without a member")
    resync: str | None = None
    nested = bool(await cache_repo.ancestor_groups(conn, tenant_id, gid))
    if t == "group.member_added":
        if member_user and not await cache_repo.user_exists(conn, tenant_id, str(member_user)):
            resync = f"webhook:{t} for a user the cache does not know"
        else:
            await cache_repo.upsert_group(conn, tenant_id, id=gid, name=d.get("group_name"), group_type=None,
                                    description=None)
            await cache_repo.upsert_membership(conn, tenant_id, group_id=gid,
                                         member_type="group" if member_group else "user",
                                         member_id=str(member_group or member_user))
            if member_user:
                for ancestor in await cache_repo.ancestor_groups(conn, tenant_id, gid):
                    await cache_repo.upsert_membership(conn, tenant_id, group_id=ancestor, member_type="user",
                                                 member_id=str(member_user), membership_type="NESTED")
            if member_group:
                resync = f"webhook:{t} (nested group)"
    else:
        await cache_repo.soft_delete_membership(conn, tenant_id, group_id=gid,
                                          member_type="group" if member_group else "user",
                                          member_id=str(member_group or member_user))
        if nested or member_group:
            resync = f"webhook:{t} under nested groups"
    await reconcile_admins(conn, settings, tenant_id)
    return Outcome(handled=True, invalidate_tenant=True, resync_reason=resync)
