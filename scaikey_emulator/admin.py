"""Admin API (``/api/v1/admin/...``) and tenant-scoped twins (``/api/v1/tenants/{tenant_id}/...``)."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response

from scaikey_emulator.access import (
    Caller,
    check_tenant,
    current_caller,
    require_admin,
    require_app_admin,
    require_global_admin,
    require_read,
)
from scaikey_emulator.common import emu_of, paginate
from scaikey_emulator.runtime import Emulator
from scaikey_emulator.state import (
    Application,
    Group,
    Partner,
    Tenant,
    User,
    Webhook,
    hash_secret,
    new_id,
    now_iso,
)
from scaikey_emulator.webhooks import EVENT_TYPES, WebhookEmitter, group_data, user_data

router = APIRouter()
CallerDep = Annotated[Caller, Depends(current_caller)]
Page = Annotated[int, Query(ge=1)]
PerPage = Annotated[int | None, Query(ge=1)]
JsonBody = Annotated[dict[str, Any], Body()]


def _emitter(request: Request) -> WebhookEmitter:
    emitter: WebhookEmitter = request.app.state.webhooks
    return emitter


# ----------------------------------------------------------------- serializers
def user_out(emu: Emulator, user: User) -> dict[str, Any]:
    data = asdict(user)
    data["partner_id"] = emu.store.partner_of_tenant(user.tenant_id)
    data["groups"] = sorted(emu.store.user_group_ids(user.id))
    data["group_names"] = emu.store.user_group_names(user.id)
    data["deleted_at"] = None if not user.deleted else data.get("updated_at")
    return data


def group_out(emu: Emulator, group: Group) -> dict[str, Any]:
    data = asdict(group)
    store = emu.store
    data["partner_id"] = store.partner_of_tenant(group.tenant_id)
    data["member_count"] = len([u for u in store.user_members.get(group.id, set()) if u in store.users])
    data["member_group_ids"] = sorted(
        g for g in store.group_members.get(group.id, set()) if store.live_group(g)
    )
    data["parent_group_ids"] = sorted(
        p for p, kids in store.group_members.items() if group.id in kids and store.live_group(p)
    )
    return data


def _match(text: str | None, *values: str | None) -> bool:
    if not text:
        return True
    needle = text.lower()
    return any(needle in (v or "").lower() for v in values)


# ----------------------------------------------------------------- lookups
def _tenant(emu: Emulator, tenant_id: str) -> Tenant:
    tenant = emu.store.tenants.get(tenant_id)
    if tenant is None or tenant.deleted:
        raise HTTPException(404, "Tenant not found")
    return tenant


def _user(emu: Emulator, user_id: str, visible: set[str] | None, *, allow_deleted: bool = False) -> User:
    user = emu.store.users.get(user_id)
    if user is None or (user.deleted and not allow_deleted):
        raise HTTPException(404, "User not found")
    check_tenant(visible, user.tenant_id)
    return user


def _group(emu: Emulator, group_id: str, visible: set[str] | None, *, allow_deleted: bool = False) -> Group:
    group = emu.store.groups.get(group_id)
    if group is None or (group.deleted and not allow_deleted):
        raise HTTPException(404, "Group not found")
    check_tenant(visible, group.tenant_id)
    return group


def _tenant_filter(
    emu: Emulator, visible: set[str] | None, tenant_id: str | None, partner_id: str | None
) -> set[str]:
    tenants = {t.id for t in emu.store.tenants.values()}
    if visible is not None:
        tenants &= visible
    if tenant_id:
        check_tenant(visible, tenant_id)
        tenants &= {tenant_id}
    if partner_id:
        tenants &= {t.id for t in emu.store.tenants.values() if t.partner_id == partner_id}
    return tenants


# ----------------------------------------------------------------- partners
@router.get("/api/v1/admin/partners")
@router.get("/api/v1/admin/partners/", include_in_schema=False)
async def list_partners(
    request: Request, caller: CallerDep, page: Page = 1, per_page: PerPage = None,
    status: str | None = None, search: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    require_global_admin(caller)
    emu = emu_of(request)
    items = [
        asdict(p) for p in sorted(emu.store.partners.values(), key=lambda p: p.id)
        if not p.deleted and (not status or p.status == status) and _match(search, p.name, p.slug)
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


@router.get("/api/v1/admin/partners/{partner_id}")
async def get_partner(request: Request, caller: CallerDep, partner_id: str) -> dict[str, Any]:
    require_global_admin(caller)
    partner = emu_of(request).store.partners.get(partner_id)
    if partner is None or partner.deleted:
        raise HTTPException(404, "Partner not found")
    return asdict(partner)


@router.post("/api/v1/admin/partners", status_code=201)
@router.post("/api/v1/admin/partners/", status_code=201, include_in_schema=False)
async def create_partner(request: Request, caller: CallerDep, body: JsonBody) -> dict[str, Any]:
    require_global_admin(caller, write=True)
    emu = emu_of(request)
    partner = Partner(
        id=body.get("id") or new_id("prt"), name=body["name"], slug=body.get("slug") or body["name"].lower(),
        status=body.get("status", "ACTIVE"), contact_email=body.get("contact_email"),
    )  # fmt: skip
    if partner.id in emu.store.partners:
        raise HTTPException(409, "Partner already exists")
    emu.store.partners[partner.id] = partner
    _emitter(request).emit("partner.created", "partner", partner.id, asdict(partner), partner_id=partner.id)
    return asdict(partner)


@router.patch("/api/v1/admin/partners/{partner_id}")
async def patch_partner(
    request: Request, caller: CallerDep, partner_id: str, body: JsonBody
) -> dict[str, Any]:
    require_global_admin(caller, write=True)
    emu = emu_of(request)
    partner = emu.store.partners.get(partner_id)
    if partner is None or partner.deleted:
        raise HTTPException(404, "Partner not found")
    for key in ("name", "slug", "status", "contact_email", "max_tenants", "max_users_per_tenant"):
        if key in body:
            setattr(partner, key, body[key])
    _emitter(request).emit("partner.updated", "partner", partner.id, asdict(partner), partner_id=partner.id)
    return asdict(partner)


# ----------------------------------------------------------------- tenants
@router.get("/api/v1/admin/tenants")
@router.get("/api/v1/admin/tenants/", include_in_schema=False)
async def list_tenants(
    request: Request, caller: CallerDep, page: Page = 1, per_page: PerPage = None,
    partner_id: str | None = None, status: str | None = None, search: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    visible = require_admin(caller)
    emu = emu_of(request)
    items = [
        asdict(t) for t in sorted(emu.store.tenants.values(), key=lambda t: t.id)
        if not t.deleted and (visible is None or t.id in visible)
        and (not partner_id or t.partner_id == partner_id) and (not status or t.status == status)
        and _match(search, t.name, t.slug)
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


@router.get("/api/v1/admin/tenants/{tenant_id}")
async def get_tenant(request: Request, caller: CallerDep, tenant_id: str) -> dict[str, Any]:
    visible = require_admin(caller)
    check_tenant(visible, tenant_id)
    return asdict(_tenant(emu_of(request), tenant_id))


@router.post("/api/v1/admin/tenants", status_code=201)
@router.post("/api/v1/admin/tenants/", status_code=201, include_in_schema=False)
async def create_tenant(request: Request, caller: CallerDep, body: JsonBody) -> dict[str, Any]:
    require_global_admin(caller, write=True)
    emu = emu_of(request)
    if body.get("partner_id") not in emu.store.partners:
        raise HTTPException(422, "partner_id must name an existing partner")
    tenant = Tenant(
        id=body.get("id") or new_id("tnt"), slug=body["slug"], name=str(body.get("name") or body["slug"]),
        partner_id=body["partner_id"], status=body.get("status", "ACTIVE"),
    )  # fmt: skip
    if tenant.id in emu.store.tenants or emu.store.tenant_by_slug(tenant.slug):
        raise HTTPException(409, "Tenant already exists")
    emu.store.tenants[tenant.id] = tenant
    _emitter(request).emit("tenant.created", "tenant", tenant.id, asdict(tenant), tenant_id=tenant.id)
    return asdict(tenant)


@router.patch("/api/v1/admin/tenants/{tenant_id}")
async def patch_tenant(request: Request, caller: CallerDep, tenant_id: str, body: JsonBody) -> dict[str, Any]:
    require_global_admin(caller, write=True)
    emu = emu_of(request)
    tenant = _tenant(emu, tenant_id)
    for key in ("name", "slug", "status", "contact_email", "partner_id", "settings"):
        if key in body:
            setattr(tenant, key, body[key])
    _emitter(request).emit("tenant.updated", "tenant", tenant.id, asdict(tenant), tenant_id=tenant.id)
    return asdict(tenant)


# ----------------------------------------------------------------- users
def _list_users(
    request: Request, visible: set[str] | None, *, page: int, per_page: int | None, search: str | None,
    status: str | None, tenant_id: str | None, partner_id: str | None, include_deleted: bool = False,
) -> dict[str, Any]:  # fmt: skip
    emu = emu_of(request)
    tenants = _tenant_filter(emu, visible, tenant_id, partner_id)
    items = [
        user_out(emu, u) for u in sorted(emu.store.users.values(), key=lambda u: u.email)
        if u.tenant_id in tenants and (include_deleted or not u.deleted)
        and (not status or u.status == status) and _match(search, u.email, u.display_name)
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


@router.get("/api/v1/admin/users")
@router.get("/api/v1/admin/users/", include_in_schema=False)
async def list_users(
    request: Request, caller: CallerDep, page: Page = 1, per_page: PerPage = None, search: str | None = None,
    status: str | None = None, tenant_id: str | None = None, partner_id: str | None = None,
    include_deleted: bool = False,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "users:read")
    return _list_users(
        request, visible, page=page, per_page=per_page, search=search, status=status,
        tenant_id=tenant_id, partner_id=partner_id, include_deleted=include_deleted,
    )  # fmt: skip


@router.get("/api/v1/tenants/{tenant_id}/users")
async def tenant_users(
    request: Request, caller: CallerDep, tenant_id: str, page: Page = 1, per_page: PerPage = None,
    search: str | None = None, status: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "users:read")
    check_tenant(visible, tenant_id)
    _tenant(emu_of(request), tenant_id)
    return _list_users(
        request, visible, page=page, per_page=per_page, search=search, status=status,
        tenant_id=tenant_id, partner_id=None,
    )  # fmt: skip


@router.get("/api/v1/admin/users/{user_id}")
async def get_user(request: Request, caller: CallerDep, user_id: str) -> dict[str, Any]:
    visible = require_read(caller, "users:read")
    emu = emu_of(request)
    return user_out(emu, _user(emu, user_id, visible))


def _emit_user(request: Request, event_type: str, user: User) -> None:
    emu = emu_of(request)
    data = user_data(user, emu.store.tenants.get(user.tenant_id))
    _emitter(request).emit(event_type, "user", user.id, data, tenant_id=user.tenant_id)


@router.post("/api/v1/admin/users", status_code=201)
@router.post("/api/v1/admin/users/", status_code=201, include_in_schema=False)
async def create_user(request: Request, caller: CallerDep, body: JsonBody) -> dict[str, Any]:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    tenant_id = body.get("tenant_id") or caller.tenant_id
    check_tenant(visible, tenant_id)
    _tenant(emu, str(tenant_id))
    email = str(body.get("email", "")).strip()
    if "@" not in email:
        raise HTTPException(422, "email is required")
    if any(u.email.lower() == email.lower() and u.tenant_id == tenant_id and not u.deleted
           for u in emu.store.users.values()):  # fmt: skip
        raise HTTPException(409, "A user with this email already exists in the tenant")
    user = User(
        id=body.get("id") or new_id("usr"), tenant_id=str(tenant_id), email=email,
        first_name=body.get("first_name", ""), last_name=body.get("last_name", ""),
        display_name=body.get("display_name", ""), status=body.get("status", "ACTIVE"),
        mfa_enabled=bool(body.get("mfa_enabled", False)), role=body.get("role"),
        custom_attributes=body.get("custom_attributes", {}),
    )  # fmt: skip
    emu.store.users[user.id] = user
    _emit_user(request, "user.created", user)
    return user_out(emu, user)


def _set_status(request: Request, user: User, status: str) -> None:
    if status == user.status:
        return
    user.status = status
    _emit_user(request, "user.suspended" if status == "SUSPENDED" else "user.activated", user)


@router.patch("/api/v1/admin/users/{user_id}")
async def patch_user(request: Request, caller: CallerDep, user_id: str, body: JsonBody) -> dict[str, Any]:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    user = _user(emu, user_id, visible)
    if "password" in body:
        raise HTTPException(422, "PATCH never carries a password")
    changed = False
    for key in (
        "email",
        "first_name",
        "last_name",
        "display_name",
        "mfa_enabled",
        "role",
        "custom_attributes",
    ):
        if key in body and getattr(user, key) != body[key]:
            setattr(user, key, body[key])
            changed = True
    if changed:
        user.updated_at = now_iso()
        _emit_user(request, "user.updated", user)
    if "status" in body:
        _set_status(request, user, str(body["status"]))
    return user_out(emu, user)


@router.post("/api/v1/admin/users/{user_id}/suspend")
async def suspend_user(request: Request, caller: CallerDep, user_id: str) -> dict[str, Any]:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    user = _user(emu, user_id, visible)
    _set_status(request, user, "SUSPENDED")
    return user_out(emu, user)


@router.post("/api/v1/admin/users/{user_id}/activate")
async def activate_user(request: Request, caller: CallerDep, user_id: str) -> dict[str, Any]:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    user = _user(emu, user_id, visible)
    _set_status(request, user, "ACTIVE")
    return user_out(emu, user)


@router.delete("/api/v1/admin/users/{user_id}", status_code=204)
async def delete_user(request: Request, caller: CallerDep, user_id: str) -> Response:
    visible = require_admin(caller, write=True)
    user = _user(emu_of(request), user_id, visible)
    user.deleted = True
    user.updated_at = now_iso()
    _emit_user(request, "user.deleted", user)
    return Response(status_code=204)


@router.post("/api/v1/admin/users/{user_id}/restore")
async def restore_user(request: Request, caller: CallerDep, user_id: str) -> dict[str, Any]:
    """Emulator convenience: undo a soft delete (emits ``user.created``)."""
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    user = _user(emu, user_id, visible, allow_deleted=True)
    if user.deleted:
        user.deleted = False
        user.updated_at = now_iso()
        _emit_user(request, "user.created", user)
    return user_out(emu, user)


# ----------------------------------------------------------------- groups
def _list_groups(
    request: Request, visible: set[str] | None, *, page: int, per_page: int | None, search: str | None,
    tenant_id: str | None, partner_id: str | None, group_type: str | None,
) -> dict[str, Any]:  # fmt: skip
    emu = emu_of(request)
    tenants = _tenant_filter(emu, visible, tenant_id, partner_id)
    items = [
        group_out(emu, g) for g in sorted(emu.store.groups.values(), key=lambda g: (g.tenant_id, g.name))
        if g.tenant_id in tenants and not g.deleted
        and (not group_type or g.group_type == group_type) and _match(search, g.name, g.description)
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


@router.get("/api/v1/admin/groups")
@router.get("/api/v1/admin/groups/", include_in_schema=False)
async def list_groups(
    request: Request, caller: CallerDep, page: Page = 1, per_page: PerPage = None, search: str | None = None,
    tenant_id: str | None = None, partner_id: str | None = None, group_type: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "groups:read")
    return _list_groups(
        request, visible, page=page, per_page=per_page, search=search, tenant_id=tenant_id,
        partner_id=partner_id, group_type=group_type,
    )  # fmt: skip


@router.get("/api/v1/tenants/{tenant_id}/groups")
async def tenant_groups(
    request: Request, caller: CallerDep, tenant_id: str, page: Page = 1, per_page: PerPage = None,
    search: str | None = None, group_type: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "groups:read")
    check_tenant(visible, tenant_id)
    _tenant(emu_of(request), tenant_id)
    return _list_groups(
        request, visible, page=page, per_page=per_page, search=search, tenant_id=tenant_id,
        partner_id=None, group_type=group_type,
    )  # fmt: skip


@router.get("/api/v1/admin/groups/{group_id}")
async def get_group(request: Request, caller: CallerDep, group_id: str) -> dict[str, Any]:
    visible = require_read(caller, "groups:read")
    emu = emu_of(request)
    return group_out(emu, _group(emu, group_id, visible))


@router.get("/api/v1/tenants/{tenant_id}/groups/{group_id}")
async def tenant_get_group(
    request: Request, caller: CallerDep, tenant_id: str, group_id: str
) -> dict[str, Any]:
    visible = require_read(caller, "groups:read")
    check_tenant(visible, tenant_id)
    emu = emu_of(request)
    group = _group(emu, group_id, visible)
    if group.tenant_id != tenant_id:
        raise HTTPException(404, "Group not found")
    return group_out(emu, group)


def _members(
    request: Request, group: Group, page: int, per_page: int | None, include_nested: bool
) -> dict[str, Any]:
    emu = emu_of(request)
    items: list[dict[str, Any]] = []
    for uid, kind, via in emu.store.group_members_expanded(group.id):
        if kind != "DIRECT" and not include_nested:
            continue
        user = emu.store.users[uid]
        items.append({
            "user_id": uid, "id": uid, "email": user.email, "display_name": user.display_name,
            "first_name": user.first_name, "last_name": user.last_name, "status": user.status,
            "tenant_id": user.tenant_id, "membership_type": kind, "via_group_id": via, "group_id": group.id,
        })  # fmt: skip
    items.sort(key=lambda m: str(m["email"]))
    return paginate(request, items, page, per_page)


@router.get("/api/v1/admin/groups/{group_id}/members")
async def group_members(
    request: Request, caller: CallerDep, group_id: str, page: Page = 1, per_page: PerPage = None,
    include_nested: bool = True,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "groups:read")
    group = _group(emu_of(request), group_id, visible)
    return _members(request, group, page, per_page, include_nested)


@router.get("/api/v1/tenants/{tenant_id}/groups/{group_id}/members")
async def tenant_group_members(
    request: Request, caller: CallerDep, tenant_id: str, group_id: str, page: Page = 1,
    per_page: PerPage = None, include_nested: bool = True,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "groups:read")
    check_tenant(visible, tenant_id)
    group = _group(emu_of(request), group_id, visible)
    if group.tenant_id != tenant_id:
        raise HTTPException(404, "Group not found")
    return _members(request, group, page, per_page, include_nested)


def _emit_group(request: Request, event_type: str, group: Group, extra: dict[str, Any] | None = None) -> None:
    data = group_data(group) if extra is None else extra
    _emitter(request).emit(event_type, "group", group.id, data, tenant_id=group.tenant_id)


@router.post("/api/v1/admin/groups", status_code=201)
@router.post("/api/v1/admin/groups/", status_code=201, include_in_schema=False)
async def create_group(request: Request, caller: CallerDep, body: JsonBody) -> dict[str, Any]:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    tenant_id = body.get("tenant_id") or caller.tenant_id
    check_tenant(visible, tenant_id)
    _tenant(emu, str(tenant_id))
    if not body.get("name"):
        raise HTTPException(422, "name is required")
    group = Group(
        id=body.get("id") or new_id("grp"), tenant_id=str(tenant_id), name=body["name"],
        group_type=body.get("group_type", "SECURITY"), description=body.get("description", ""),
    )  # fmt: skip
    emu.store.groups[group.id] = group
    emu.store.user_members.setdefault(group.id, set())
    emu.store.group_members.setdefault(group.id, set())
    _emit_group(request, "group.created", group)
    return group_out(emu, group)


@router.patch("/api/v1/admin/groups/{group_id}")
async def patch_group(request: Request, caller: CallerDep, group_id: str, body: JsonBody) -> dict[str, Any]:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    group = _group(emu, group_id, visible)
    for key in ("name", "group_type", "description"):
        if key in body:
            setattr(group, key, body[key])
    group.updated_at = now_iso()
    _emit_group(request, "group.updated", group)
    return group_out(emu, group)


@router.delete("/api/v1/admin/groups/{group_id}", status_code=204)
async def delete_group(request: Request, caller: CallerDep, group_id: str) -> Response:
    visible = require_admin(caller, write=True)
    group = _group(emu_of(request), group_id, visible)
    group.deleted = True
    group.updated_at = now_iso()
    _emit_group(request, "group.deleted", group)
    return Response(status_code=204)


@router.post("/api/v1/admin/groups/{group_id}/restore")
async def restore_group(request: Request, caller: CallerDep, group_id: str) -> dict[str, Any]:
    """Emulator convenience: undo a soft delete (emits ``group.created``)."""
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    group = _group(emu, group_id, visible, allow_deleted=True)
    if group.deleted:
        group.deleted = False
        _emit_group(request, "group.created", group)
    return group_out(emu, group)


def _would_cycle(emu: Emulator, parent: str, child: str) -> bool:
    return parent == child or parent in _descendants(emu, child)


def _descendants(emu: Emulator, gid: str) -> set[str]:
    out: set[str] = set()
    frontier = [gid]
    while frontier:
        for kid in emu.store.group_members.get(frontier.pop(), set()):
            if kid not in out:
                out.add(kid)
                frontier.append(kid)
    return out


@router.post("/api/v1/admin/groups/{group_id}/members", status_code=201)
async def add_member(request: Request, caller: CallerDep, group_id: str, body: JsonBody) -> dict[str, Any]:
    """Body ``{"user_id": ...}`` or ``{"group_id": ...}`` (nested group). Emits ``group.member_added``."""
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    group = _group(emu, group_id, visible)
    if "user_id" in body:
        user = _user(emu, body["user_id"], visible)
        if user.tenant_id != group.tenant_id:
            raise HTTPException(422, "User and group belong to different tenants")
        emu.store.user_members.setdefault(group.id, set()).add(user.id)
        data = {"group_id": group.id, "group_name": group.name, "user_id": user.id, "email": user.email,
                "member_type": "user", "tenant_id": group.tenant_id}  # fmt: skip
    elif "group_id" in body:
        child = _group(emu, body["group_id"], visible)
        if child.tenant_id != group.tenant_id or _would_cycle(emu, group.id, child.id):
            raise HTTPException(422, "Nested group must be in the same tenant and must not form a cycle")
        emu.store.group_members.setdefault(group.id, set()).add(child.id)
        data = {"group_id": group.id, "group_name": group.name, "member_group_id": child.id,
                "member_group_name": child.name, "member_type": "group", "tenant_id": group.tenant_id}  # fmt: skip
    else:
        raise HTTPException(422, "user_id or group_id is required")
    _emit_group(request, "group.member_added", group, data)
    return data


@router.delete("/api/v1/admin/groups/{group_id}/members/{member_id}", status_code=204)
async def remove_member(request: Request, caller: CallerDep, group_id: str, member_id: str) -> Response:
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    group = _group(emu, group_id, visible)
    users = emu.store.user_members.setdefault(group.id, set())
    kids = emu.store.group_members.setdefault(group.id, set())
    if member_id in users:
        users.discard(member_id)
        user = emu.store.users[member_id]
        data = {"group_id": group.id, "group_name": group.name, "user_id": member_id, "email": user.email,
                "member_type": "user", "tenant_id": group.tenant_id}  # fmt: skip
    elif member_id in kids:
        kids.discard(member_id)
        data = {"group_id": group.id, "group_name": group.name, "member_group_id": member_id,
                "member_type": "group", "tenant_id": group.tenant_id}  # fmt: skip
    else:
        raise HTTPException(404, "Membership not found")
    _emit_group(request, "group.member_removed", group, data)
    return Response(status_code=204)


# ----------------------------------------------------------------- applications
def _app_visible(caller: Caller, app: Application) -> bool:
    if caller.is_global_admin or app.scope == "GLOBAL":
        return True
    if app.scope == "PARTNER":
        return app.partner_id == caller.partner_id
    visible = caller.visible_tenants()
    return visible is None or app.tenant_id in visible


def _app(request: Request, caller: Caller, app_ref: str) -> Application:
    app = emu_of(request).store.app_by_ref(app_ref)
    if app is None or not _app_visible(caller, app):
        raise HTTPException(404, "Application not found")
    return app


@router.get("/api/v1/admin/applications")
@router.get("/api/v1/admin/applications/", include_in_schema=False)
async def list_applications(
    request: Request, caller: CallerDep, page: Page = 1, per_page: PerPage = None, tenant_id: str | None = None,
    partner_id: str | None = None, scope: str | None = None, application_type: str | None = None,
    search: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    require_admin(caller)
    emu = emu_of(request)
    items = [
        a.public() for a in sorted(emu.store.applications.values(), key=lambda a: a.client_id)
        if not a.deleted and _app_visible(caller, a) and (not tenant_id or a.tenant_id == tenant_id)
        and (not partner_id or a.partner_id == partner_id) and (not scope or a.scope == scope)
        and (not application_type or a.application_type == application_type) and _match(search, a.name, a.client_id)
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


@router.get("/api/v1/admin/applications/{app_id}")
async def get_application(request: Request, caller: CallerDep, app_id: str) -> dict[str, Any]:
    require_admin(caller)
    return _app(request, caller, app_id).public()


@router.post("/api/v1/admin/applications", status_code=201)
@router.post("/api/v1/admin/applications/", status_code=201, include_in_schema=False)
async def create_application(request: Request, caller: CallerDep, body: JsonBody) -> dict[str, Any]:
    """Creates an app; the response carries ``client_secret`` once (confidential types only)."""
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    scope = body.get("scope", "TENANT")
    if scope == "GLOBAL" and not caller.is_global_admin:
        raise HTTPException(403, "Only super_admin may register GLOBAL applications")
    tenant_id = body.get("tenant_id") or (caller.tenant_id if scope != "GLOBAL" else None)
    if scope != "GLOBAL":
        check_tenant(visible, tenant_id)
        _tenant(emu, str(tenant_id))
    client_id = body.get("client_id") or new_id("cli")
    if emu.store.app_by_client_id(client_id):
        raise HTTPException(409, "client_id already exists")
    app = Application(
        id=body.get("id") or new_id("app"), client_id=client_id, name=str(body.get("name") or client_id),
        application_type=body.get("application_type", "SERVICE"), scope=scope, tenant_id=tenant_id,
        partner_id=body.get("partner_id") or emu.store.partner_of_tenant(tenant_id),
        allowed_scopes=list(body.get("allowed_scopes", [])), redirect_uris=list(body.get("redirect_uris", [])),
        token_lifetime=int(body.get("token_lifetime", 3600)), audience=body.get("audience"), role=body.get("role"),
    )  # fmt: skip
    secret = None
    if app.confidential:
        secret = body.get("client_secret") or secrets.token_urlsafe(32)
        app.client_secret_hash = hash_secret(secret)
    emu.store.applications[app.id] = app
    emu.store.app_users[app.id] = set()
    emu.store.app_groups[app.id] = set()
    _emitter(request).emit("application.created", "application", app.id, app.public(), tenant_id=tenant_id)
    return {**app.public(), "client_secret": secret}


@router.patch("/api/v1/admin/applications/{app_id}")
async def patch_application(
    request: Request, caller: CallerDep, app_id: str, body: JsonBody
) -> dict[str, Any]:
    """Partial update; ``allowed_scopes`` and ``redirect_uris`` *replace* the stored lists."""
    visible = require_admin(caller, write=True)
    app = _app(request, caller, app_id)
    if app.scope == "GLOBAL" and not caller.is_global_admin:
        raise HTTPException(403, "Only super_admin may modify GLOBAL applications")
    if app.scope == "TENANT":
        check_tenant(visible, app.tenant_id)
    for key in ("name", "allowed_scopes", "redirect_uris", "allowed_origins", "token_lifetime", "audience",
                "role", "status"):  # fmt: skip
        if key in body:
            value = body[key]
            setattr(app, key, list(value) if isinstance(value, list) else value)
    _emitter(request).emit(
        "application.updated", "application", app.id, app.public(), tenant_id=app.tenant_id
    )
    return app.public()


@router.delete("/api/v1/admin/applications/{app_id}", status_code=204)
async def delete_application(request: Request, caller: CallerDep, app_id: str) -> Response:
    require_admin(caller, write=True)
    app = _app(request, caller, app_id)
    if not caller.is_global_admin and app.scope != "TENANT":
        raise HTTPException(403, "Not allowed to delete this application")
    app.deleted = True
    _emitter(request).emit(
        "application.deleted", "application", app.id, app.public(), tenant_id=app.tenant_id
    )
    return Response(status_code=204)


# ----------------------------------------------------------------- app assignments (tenant-scoped)
def _tenant_app(request: Request, caller: Caller, tenant_id: str, app_ref: str) -> Application:
    visible = require_app_admin(caller)
    check_tenant(visible, tenant_id)
    emu = emu_of(request)
    _tenant(emu, tenant_id)
    if app_ref == "me":
        app = emu.store.app_by_client_id(caller.client_id or "")
        if app is None:
            raise HTTPException(404, "Application not found")
        return app
    return _app(request, caller, app_ref)


@router.get("/api/v1/tenants/{tenant_id}/applications/{app_id}/effective-users")
async def effective_users(
    request: Request, caller: CallerDep, tenant_id: str, app_id: str, page: Page = 1, per_page: PerPage = None,
) -> dict[str, Any]:  # fmt: skip
    """Direct assignees plus users reached through (nested) group assignment, for one tenant."""
    app = _tenant_app(request, caller, tenant_id, app_id)
    emu = emu_of(request)
    items = []
    for user, kind, via in emu.store.effective_users(app.id, tenant_id):
        items.append({
            "user_id": user.id, "id": user.id, "email": user.email, "display_name": user.display_name,
            "first_name": user.first_name, "last_name": user.last_name, "status": user.status,
            "mfa_enabled": user.mfa_enabled, "tenant_id": user.tenant_id, "assignment_type": kind,
            "via_group_ids": sorted(via),
        })  # fmt: skip
    body = paginate(request, items, page, per_page)
    for item in body.get("items", []):  # group expansion only for the page served, not every user per page
        item["groups"] = sorted(emu.store.user_group_ids(item["user_id"]))
    return body


@router.get("/api/v1/tenants/{tenant_id}/applications/{app_id}/assignees")
async def assignees(
    request: Request, caller: CallerDep, tenant_id: str, app_id: str, page: Page = 1, per_page: PerPage = None,
) -> dict[str, Any]:  # fmt: skip
    app = _tenant_app(request, caller, tenant_id, app_id)
    store = emu_of(request).store
    items: list[dict[str, Any]] = []
    for uid in sorted(store.app_users.get(app.id, set())):
        user = store.users.get(uid)
        if user and not user.deleted and user.tenant_id == tenant_id:
            items.append({"assignee_type": "USER", "assignee_id": uid, "user_id": uid, "email": user.email})
    for gid in sorted(store.app_groups.get(app.id, set())):
        group = store.groups.get(gid)
        if group and not group.deleted and group.tenant_id == tenant_id:
            items.append({"assignee_type": "GROUP", "assignee_id": gid, "group_id": gid, "name": group.name})
    return paginate(request, items, page, per_page)


@router.post("/api/v1/tenants/{tenant_id}/applications/{app_id}/assignees", status_code=201)
async def assign(
    request: Request, caller: CallerDep, tenant_id: str, app_id: str, body: JsonBody
) -> dict[str, Any]:
    """Body ``{"user_id"}`` or ``{"group_id"}``; emits ``application.user_assigned|group_assigned``."""
    app = _tenant_app(request, caller, tenant_id, app_id)
    visible = require_admin(caller, write=True)
    emu = emu_of(request)
    base = {"application_id": app.id, "client_id": app.client_id, "tenant_id": tenant_id}
    if "user_id" in body:
        user = _user(emu, body["user_id"], visible)
        if user.tenant_id != tenant_id:
            raise HTTPException(422, "User belongs to another tenant")
        emu.store.app_users.setdefault(app.id, set()).add(user.id)
        data, event = {**base, "user_id": user.id, "email": user.email}, "application.user_assigned"
    elif "group_id" in body:
        group = _group(emu, body["group_id"], visible)
        if group.tenant_id != tenant_id:
            raise HTTPException(422, "Group belongs to another tenant")
        emu.store.app_groups.setdefault(app.id, set()).add(group.id)
        data, event = {**base, "group_id": group.id, "group_name": group.name}, "application.group_assigned"
    else:
        raise HTTPException(422, "user_id or group_id is required")
    _emitter(request).emit(event, "application", app.id, data, tenant_id=tenant_id)
    return data


@router.delete("/api/v1/tenants/{tenant_id}/applications/{app_id}/assignees/{principal_id}", status_code=204)
async def unassign(
    request: Request, caller: CallerDep, tenant_id: str, app_id: str, principal_id: str
) -> Response:
    app = _tenant_app(request, caller, tenant_id, app_id)
    require_admin(caller, write=True)
    store = emu_of(request).store
    base = {"application_id": app.id, "client_id": app.client_id, "tenant_id": tenant_id}
    if principal_id in store.app_users.get(app.id, set()):
        store.app_users[app.id].discard(principal_id)
        data, event = {**base, "user_id": principal_id}, "application.user_unassigned"
    elif principal_id in store.app_groups.get(app.id, set()):
        store.app_groups[app.id].discard(principal_id)
        data, event = {**base, "group_id": principal_id}, "application.group_unassigned"
    else:
        raise HTTPException(404, "Assignment not found")
    _emitter(request).emit(event, "application", app.id, data, tenant_id=tenant_id)
    return Response(status_code=204)


@router.get("/api/v1/tenants/{tenant_id}/groups/{group_id}/applications")
async def group_applications(
    request: Request, caller: CallerDep, tenant_id: str, group_id: str, page: Page = 1, per_page: PerPage = None,
) -> dict[str, Any]:  # fmt: skip
    visible = require_read(caller, "groups:read")
    check_tenant(visible, tenant_id)
    emu = emu_of(request)
    group = _group(emu, group_id, visible)
    items = [
        a.public() for a in sorted(emu.store.applications.values(), key=lambda a: a.client_id)
        if not a.deleted and group.id in emu.store.app_groups.get(a.id, set())
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


# ----------------------------------------------------------------- webhook subscriptions
@router.get("/api/v1/admin/webhooks/events")
async def webhook_events(caller: CallerDep) -> dict[str, Any]:
    require_admin(caller)
    return {"events": EVENT_TYPES}


@router.get("/api/v1/admin/webhooks")
@router.get("/api/v1/admin/webhooks/", include_in_schema=False)
async def list_webhooks(
    request: Request, caller: CallerDep, page: Page = 1, per_page: PerPage = None,
    tenant_id: str | None = None, partner_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    require_global_admin(caller)
    hooks = emu_of(request).store.webhooks.values()
    items = [
        h.public() for h in sorted(hooks, key=lambda h: h.created_at)
        if (not tenant_id or h.tenant_id == tenant_id) and (not partner_id or h.partner_id == partner_id)
    ]  # fmt: skip
    return paginate(request, items, page, per_page)


@router.post("/api/v1/admin/webhooks", status_code=201)
@router.post("/api/v1/admin/webhooks/", status_code=201, include_in_schema=False)
async def create_webhook(request: Request, caller: CallerDep, body: JsonBody) -> dict[str, Any]:
    """Body: ``url`` (required), ``secret`` (else generated; returned once), ``events`` (empty = all),
    ``tenant_id``, ``partner_id``, ``envelope_style`` (scaikey|scaiflow)."""
    require_global_admin(caller, write=True)
    if not body.get("url"):
        raise HTTPException(422, "url is required")
    if body.get("envelope_style", "scaikey") not in ("scaikey", "scaiflow"):
        raise HTTPException(422, "envelope_style must be scaikey or scaiflow")
    unknown = set(body.get("events", [])) - set(EVENT_TYPES) - {"*"}
    if unknown:
        raise HTTPException(422, f"Unknown event types: {sorted(unknown)}")
    hook = Webhook(
        id=new_id("whk"), url=body["url"], secret=body.get("secret") or "whsec_" + secrets.token_urlsafe(24),
        events=list(body.get("events", [])), tenant_id=body.get("tenant_id"), partner_id=body.get("partner_id"),
        envelope_style=body.get("envelope_style", "scaikey"), description=body.get("description", ""),
    )  # fmt: skip
    emu_of(request).store.webhooks[hook.id] = hook
    return {**hook.public(), "secret": hook.secret}


@router.get("/api/v1/admin/webhooks/{webhook_id}")
async def get_webhook(request: Request, caller: CallerDep, webhook_id: str) -> dict[str, Any]:
    require_global_admin(caller)
    hook = emu_of(request).store.webhooks.get(webhook_id)
    if hook is None:
        raise HTTPException(404, "Webhook not found")
    return hook.public()


@router.patch("/api/v1/admin/webhooks/{webhook_id}")
async def patch_webhook(
    request: Request, caller: CallerDep, webhook_id: str, body: JsonBody
) -> dict[str, Any]:
    require_global_admin(caller, write=True)
    hook = emu_of(request).store.webhooks.get(webhook_id)
    if hook is None:
        raise HTTPException(404, "Webhook not found")
    for key in (
        "url",
        "secret",
        "events",
        "active",
        "envelope_style",
        "description",
        "tenant_id",
        "partner_id",
    ):
        if key in body:
            setattr(hook, key, body[key])
    return hook.public()


@router.delete("/api/v1/admin/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(request: Request, caller: CallerDep, webhook_id: str) -> Response:
    require_global_admin(caller, write=True)
    if emu_of(request).store.webhooks.pop(webhook_id, None) is None:
        raise HTTPException(404, "Webhook not found")
    return Response(status_code=204)


@router.get("/api/v1/admin/webhooks/{webhook_id}/deliveries")
async def webhook_deliveries(
    request: Request, caller: CallerDep, webhook_id: str, page: Page = 1, per_page: PerPage = None,
) -> dict[str, Any]:  # fmt: skip
    require_global_admin(caller)
    items = [d for d in _emitter(request).deliveries if d["webhook_id"] == webhook_id]
    return paginate(request, items, page, per_page)
