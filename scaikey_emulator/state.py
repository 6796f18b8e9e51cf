"""In-memory ScaiKey state: entities, seed loading, group expansion and assignment resolution."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SEEDS_DIR = Path(__file__).parent / "seeds"
DEV_CLIENT_SECRET = "dev-insecure-client-secret"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Settings:
    """Tunable emulator behaviour (seed ``settings`` block, or ``POST /_emulator/settings``)."""

    default_page_size: int = 50
    max_page_size: int = 100
    jwks_max_age: int = 300
    alg: str = "RS256"
    revoke_family_on_reuse: bool = True
    refresh_token_lifetime: int = 30 * 24 * 3600
    auth_code_lifetime: int = 600
    webhook_retries: int = 3
    webhook_backoff_seconds: float = 0.05
    webhook_timeout_seconds: float = 5.0
    webhook_breakage: list[str] = field(default_factory=list)

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown setting {key!r}")
            setattr(self, key, value)


@dataclass
class Partner:
    id: str
    name: str
    slug: str
    status: str = "ACTIVE"
    contact_email: str | None = None
    max_tenants: int = 100
    max_users_per_tenant: int = 1000
    max_applications_per_tenant: int = 100
    created_at: str = field(default_factory=now_iso)
    deleted: bool = False


@dataclass
class Tenant:
    id: str
    slug: str
    name: str
    partner_id: str
    status: str = "ACTIVE"
    contact_email: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    deleted: bool = False


@dataclass
class User:
    id: str
    tenant_id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    status: str = "ACTIVE"
    mfa_enabled: bool = False
    role: str | None = None
    custom_attributes: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    deleted: bool = False

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = f"{self.first_name} {self.last_name}".strip() or self.email


@dataclass
class Group:
    id: str
    tenant_id: str
    name: str
    group_type: str = "SECURITY"
    description: str = ""
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    deleted: bool = False


@dataclass
class Application:
    id: str
    client_id: str
    name: str
    application_type: str = "SERVICE"  # WEB | SERVICE | SPA | NATIVE
    scope: str = "TENANT"  # GLOBAL | PARTNER | TENANT
    tenant_id: str | None = None
    partner_id: str | None = None
    client_secret_hash: str | None = field(default=None, repr=False)
    allowed_scopes: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    token_lifetime: int = 3600
    audience: str | None = None
    role: str | None = None
    status: str = "ACTIVE"
    created_at: str = field(default_factory=now_iso)
    deleted: bool = False

    @property
    def confidential(self) -> bool:
        return self.application_type in ("WEB", "SERVICE")

    def check_secret(self, secret: str | None) -> bool:
        if not self.confidential or self.client_secret_hash is None or secret is None:
            return False
        return secrets.compare_digest(self.client_secret_hash, hash_secret(secret))

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("client_secret_hash")
        data["audience"] = self.audience or self.client_id
        return data


@dataclass
class Webhook:
    id: str
    url: str
    secret: str = field(repr=False)
    events: list[str] = field(default_factory=list)  # empty = every event
    tenant_id: str | None = None
    partner_id: str | None = None
    envelope_style: str = "scaikey"  # scaikey | scaiflow
    active: bool = True
    description: str = ""
    created_at: str = field(default_factory=now_iso)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("secret")
        return data

    def wants(self, event_type: str, tenant_id: str | None, partner_id: str | None) -> bool:
        if not self.active or (self.events and event_type not in self.events and "*" not in self.events):
            return False
        if self.tenant_id and tenant_id != self.tenant_id:
            return False
        return not (self.partner_id and partner_id != self.partner_id)


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    tenant_id: str
    scope: list[str]
    nonce: str | None
    code_challenge: str | None
    auth_time: int
    amr: list[str]
    expires_at: float
    used: bool = False
    family_id: str | None = None


@dataclass
class RefreshToken:
    token_hash: str
    family_id: str
    client_id: str
    user_id: str
    tenant_id: str
    scope: list[str]
    auth_time: int
    amr: list[str]
    expires_at: float
    issued_at: float = field(default_factory=time.time)
    used: bool = False
    revoked: bool = False


def _build(cls: Any, raw: dict[str, Any]) -> Any:
    known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
    return cls(**known)


class Store:
    """All mutable emulator state. Single process, single event loop: no locking needed."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.partners: dict[str, Partner] = {}
        self.tenants: dict[str, Tenant] = {}
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.user_members: dict[str, set[str]] = {}  # group_id -> user ids (direct)
        self.group_members: dict[str, set[str]] = {}  # group_id -> child group ids
        self.applications: dict[str, Application] = {}
        self.app_users: dict[str, set[str]] = {}  # app_id -> user ids (direct assignment)
        self.app_groups: dict[str, set[str]] = {}  # app_id -> group ids
        self.webhooks: dict[str, Webhook] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.revoked_jtis: set[str] = set()
        self.issued: dict[str, dict[str, Any]] = {}  # jti -> claims of every token this emulator minted
        self.sessions: dict[str, str] = {}  # session id -> user id (authorize "login" sessions)

    # ---------------------------------------------------------------- seed
    def load_seed(self, seed: dict[str, Any], *, overrides: dict[str, Any] | None = None) -> None:
        """Replace all directory state with the seed (keys, log and faults live elsewhere)."""
        self.__init__()  # type: ignore[misc]
        seed = copy.deepcopy(seed)
        self.settings.update(seed.get("settings", {}))
        for raw in seed.get("partners", []):
            p = _build(Partner, raw)
            self.partners[p.id] = p
        for raw in seed.get("tenants", []):
            t = _build(Tenant, raw)
            self.tenants[t.id] = t
        for raw in seed.get("users", []):
            u = _build(User, raw)
            self.users[u.id] = u
        for raw in seed.get("groups", []):
            g = _build(Group, raw)
            self.groups[g.id] = g
            self.user_members.setdefault(g.id, set())
            self.group_members.setdefault(g.id, set())
        for raw in seed.get("memberships", []):
            gid = raw["group_id"]
            if "user_id" in raw:
                self.user_members[gid].add(raw["user_id"])
            else:
                self.group_members[gid].add(raw["member_group_id"])
        overrides = overrides or {}
        for raw in seed.get("applications", []):
            raw = dict(raw)
            raw.update(overrides.get(raw["client_id"], {}))
            secret = raw.pop("client_secret", None)
            app = _build(Application, raw)
            if secret:
                app.client_secret_hash = hash_secret(secret)
            self.applications[app.id] = app
            self.app_users[app.id] = set(raw.get("assigned_users", []))
            self.app_groups[app.id] = set(raw.get("assigned_groups", []))
        for raw in seed.get("webhooks", []):
            w = _build(Webhook, raw)
            self.webhooks[w.id] = w

    # ---------------------------------------------------------------- lookups
    def tenant_by_slug(self, slug: str) -> Tenant | None:
        return next((t for t in self.tenants.values() if t.slug == slug and not t.deleted), None)

    def app_by_client_id(self, client_id: str) -> Application | None:
        return next(
            (a for a in self.applications.values() if a.client_id == client_id and not a.deleted), None
        )

    def app_by_ref(self, ref: str) -> Application | None:
        app = self.applications.get(ref)
        if app is not None and not app.deleted:
            return app
        return self.app_by_client_id(ref)

    def user_by_email(self, email: str) -> User | None:
        email = email.lower()
        return next((u for u in self.users.values() if u.email.lower() == email and not u.deleted), None)

    def partner_of_tenant(self, tenant_id: str | None) -> str | None:
        tenant = self.tenants.get(tenant_id or "")
        return tenant.partner_id if tenant else None

    # ---------------------------------------------------------------- groups
    def live_group(self, gid: str) -> bool:
        g = self.groups.get(gid)
        return g is not None and not g.deleted

    def ancestors(self, gid: str) -> set[str]:
        """Groups that contain ``gid`` directly or transitively (nesting is recursive)."""
        out: set[str] = set()
        frontier = [gid]
        while frontier:
            current = frontier.pop()
            for parent, children in self.group_members.items():
                if current in children and parent not in out and self.live_group(parent):
                    out.add(parent)
                    frontier.append(parent)
        return out

    def user_group_ids(self, user_id: str) -> set[str]:
        direct = {g for g, members in self.user_members.items() if user_id in members and self.live_group(g)}
        out = set(direct)
        for gid in direct:
            out |= self.ancestors(gid)
        return out

    def user_group_names(self, user_id: str) -> list[str]:
        return sorted(self.groups[g].name for g in self.user_group_ids(user_id))

    def group_members_expanded(self, gid: str) -> list[tuple[str, str, str | None]]:
        """(user_id, membership_type, via_group_id) for direct and nested members, live users only."""
        seen: dict[str, tuple[str, str, str | None]] = {}
        for uid in sorted(self.user_members.get(gid, set())):
            seen[uid] = (uid, "DIRECT", None)
        frontier = sorted(self.group_members.get(gid, set()))
        visited = {gid}
        while frontier:
            child = frontier.pop(0)
            if child in visited or not self.live_group(child):
                continue
            visited.add(child)
            for uid in sorted(self.user_members.get(child, set())):
                seen.setdefault(uid, (uid, "NESTED", child))
            frontier.extend(sorted(self.group_members.get(child, set())))
        return [m for m in seen.values() if self._live_user(m[0])]

    def _live_user(self, uid: str) -> bool:
        u = self.users.get(uid)
        return u is not None and not u.deleted

    # ---------------------------------------------------------------- applications
    def effective_users(self, app_id: str, tenant_id: str) -> list[tuple[User, str, list[str]]]:
        """(user, assignment_type DIRECT|GROUP, via group ids) for every user of ``tenant_id`` with access."""
        result: dict[str, tuple[User, str, list[str]]] = {}
        for uid in sorted(self.app_users.get(app_id, set())):
            user = self.users.get(uid)
            if user and not user.deleted and user.tenant_id == tenant_id:
                result[uid] = (user, "DIRECT", [])
        for gid in sorted(self.app_groups.get(app_id, set())):
            group = self.groups.get(gid)
            if group is None or group.deleted or group.tenant_id != tenant_id:
                continue
            for uid, _, _ in self.group_members_expanded(gid):
                user = self.users[uid]
                if uid in result:
                    if result[uid][1] == "GROUP":
                        result[uid][2].append(gid)
                    continue
                result[uid] = (user, "GROUP", [gid])
        return sorted(result.values(), key=lambda item: item[0].email)


def load_seed_source(seed: dict[str, Any] | str | None) -> dict[str, Any]:
    """``None``/"empty" -> empty seed; "dev" (or any name in seeds/) -> bundled seed; else a JSON path."""
    if seed is None:
        seed = "empty"
    if isinstance(seed, dict):
        return seed
    bundled = SEEDS_DIR / f"{seed}.json"
    path = bundled if bundled.exists() else Path(seed)
    data: dict[str, Any] = json.loads(path.read_text())
    return data
