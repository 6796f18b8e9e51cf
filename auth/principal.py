"""Who is calling, as the rest of the code sees it. Built by the authenticator, never by routers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

IdentityType = Literal["user", "service_account", "group", "system"]

ROLES = ("super_admin", "partner_admin", "tenant_admin")

# The full documented scope list (spec core.md §5.4). ``admin`` implies every other scope.
SCOPES = (
    "secrets:read", "secrets:write", "secrets:delete", "secrets:list", "secrets:rotate",
    "policies:read", "policies:write", "audit:read", "audit:export", "pki:issue", "pki:admin",
    "dynamic:read", "dynamic:manage", "identity:read", "identity:admin", "federation:read",
    "federation:write", "subscriptions:read", "subscriptions:write", "admin",
)


@dataclass(frozen=True, slots=True)
class Principal:
    identity_id: str                      # user:alice@acme.example | sa:ci-deployer | system:housekeeping
    identity_type: IdentityType
    subject: str                          # token ``sub`` (usr_... or client id)
    tenant_id: str | None                 # home tenant (token claim)
    partner_id: str | None
    scopes: frozenset[str]
    groups: tuple[str, ...] = ()          # "group:sre", ...
    roles: tuple[str, ...] = ()
    display_name: str | None = None
    mfa_verified_at: datetime | None = None
    expires_at: datetime | None = None
    issued_at: datetime | None = None
    token_kind: Literal["jwt", "pat", "system"] = "jwt"
    token_id: str | None = None           # JWT jti or PAT id
    client_id: str | None = None
    platform_token: bool = False
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def is_super_admin(self) -> bool:
        return "super_admin" in self.roles

    @property
    def is_partner_admin(self) -> bool:
        return "partner_admin" in self.roles or "super_admin" in self.roles

    @property
    def identity_ids(self) -> tuple[str, ...]:
        """The caller plus its groups: what policy bindings are matched against."""
        return (self.identity_id, *self.groups)


def system_principal(job: str, tenant_id: str | None = None, partner_id: str | None = None) -> Principal:
    """Background work acts as ``system:<job>`` and is audited under that name."""
    return Principal(
        identity_id=f"system:{job}", identity_type="system", subject=f"system:{job}", tenant_id=tenant_id,
        partner_id=partner_id, scopes=frozenset({"admin"}), token_kind="system",
    )
