"""The emulator's runtime object: state + keyring + token minting/verification + request log + faults."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from scaikey_emulator.keys import Keyring
from scaikey_emulator.state import Application, Store, User, load_seed_source

PLATFORM_SCOPE_DETAIL = "Platform token requires admin:read or admin:write scope"
ADMIN_SCOPES = {"admin:read", "admin:write"}


@dataclass
class Fault:
    """One injected fault: matches ``path`` (fnmatch pattern) and optionally ``method``."""

    id: str
    path: str
    method: str | None = None
    status: int | None = None
    body: Any = None
    latency: float = 0.0
    lying_total: int | None = None
    times: int | None = None  # None = until cleared
    hits: int = 0

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class EmulatorOptions:
    base_url: str
    scaivault_client_secret: str | None = None
    admin_token_lifetime: int | None = None


@dataclass
class Emulator:
    """Everything one emulator instance holds; attached to ``app.state.emulator``."""

    seed_source: dict[str, Any]
    options: EmulatorOptions
    store: Store = field(default_factory=Store)
    keyring: Keyring = field(default_factory=Keyring)
    request_log: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.startup_source = self.seed_source
        self.reset()

    @property
    def base_url(self) -> str:
        return self.options.base_url.rstrip("/")

    # ------------------------------------------------------------- lifecycle
    def app_overrides(self) -> dict[str, dict[str, Any]]:
        overrides: dict[str, dict[str, Any]] = {}
        if self.options.scaivault_client_secret:
            overrides["scaivault"] = {"client_secret": self.options.scaivault_client_secret}
        if self.options.admin_token_lifetime:
            overrides["dev-admin"] = {"token_lifetime": self.options.admin_token_lifetime}
        return overrides

    def reset(self, seed: dict[str, Any] | str | None = None, *, new_keys: bool = False) -> None:
        """Reload directory state: from ``seed`` if given, else from the seed the app was started with."""
        self.seed_source = load_seed_source(seed) if seed is not None else self.startup_source
        self.store.load_seed(self.seed_source, overrides=self.app_overrides())
        first = self.keyring.keys[0]
        if new_keys or first.alg != self.store.settings.alg:
            self.keyring = Keyring(self.store.settings.alg)
        else:  # back to the single startup key, so every test starts from the same JWKS
            first.status = "active"
            self.keyring.keys = [first]
        self.request_log.clear()
        self.faults.clear()

    # ------------------------------------------------------------- issuers
    def issuer(self, tenant_id: str | None) -> str:
        return f"{self.base_url}/tenants/{tenant_id}" if tenant_id else f"{self.base_url}/platform"

    def valid_issuer(self, iss: str) -> bool:
        if iss == f"{self.base_url}/platform":
            return True
        prefix = f"{self.base_url}/tenants/"
        return iss.startswith(prefix) and iss[len(prefix) :] in self.store.tenants

    # ------------------------------------------------------------- claims
    def _base_claims(self, *, sub: str, aud: str, tenant_id: str | None, lifetime: int) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer(tenant_id),
            "sub": sub,
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        if tenant_id:
            claims["tenant_id"] = tenant_id
            partner = self.store.partner_of_tenant(tenant_id)
            if partner:
                claims["partner_id"] = partner
        return claims

    def service_claims(self, app: Application, scopes: list[str], tenant_id: str | None) -> dict[str, Any]:
        """client_credentials access-token claims (``sub == client_id``)."""
        platform = app.scope == "GLOBAL"
        claims = self._base_claims(
            sub=app.client_id,
            aud=app.audience or app.client_id,
            tenant_id=None if platform else tenant_id,
            lifetime=app.token_lifetime,
        )
        if app.scope == "PARTNER" and "partner_id" not in claims and app.partner_id:
            claims["partner_id"] = app.partner_id
        claims.update(
            {
                "scope": " ".join(scopes),
                "client_id": app.client_id,
                "app_scope": app.scope,
                "platform_token": platform,
                "token_type": "client_credentials",
            }
        )
        if app.role:
            claims["role"] = app.role
        return claims

    def user_claims(
        self, app: Application, user: User, scopes: list[str], *, auth_time: int, amr: list[str]
    ) -> dict[str, Any]:
        """User access-token claims (authorization_code / refresh_token grants)."""
        claims = self._base_claims(
            sub=user.id,
            aud=app.audience or app.client_id,
            tenant_id=user.tenant_id,
            lifetime=app.token_lifetime,
        )
        claims.update(
            {
                "scope": " ".join(scopes),
                "client_id": app.client_id,
                "app_scope": app.scope,
                "email": user.email,
                "name": user.display_name,
                "groups": self.store.user_group_names(user.id),
                "amr": amr,
                "auth_time": auth_time,
            }
        )
        if user.role:
            claims["role"] = user.role
        return claims

    def id_token_claims(self, access: dict[str, Any], app: Application, nonce: str | None) -> dict[str, Any]:
        keep = (
            "iss",
            "sub",
            "iat",
            "nbf",
            "exp",
            "tenant_id",
            "partner_id",
            "email",
            "name",
            "groups",
            "amr",
            "auth_time",
            "role",
        )
        claims = {k: access[k] for k in keep if k in access}
        claims["aud"] = app.client_id
        claims["azp"] = app.client_id
        claims["jti"] = secrets.token_urlsafe(16)
        claims["email_verified"] = True
        if nonce:
            claims["nonce"] = nonce
        return claims

    # ------------------------------------------------------------- signing
    def sign(self, claims: dict[str, Any], *, register: bool = True) -> str:
        token = self.keyring.active.sign(claims)
        if register and "jti" in claims:
            self.store.issued[claims["jti"]] = claims
        return token

    def verify(self, token: str) -> dict[str, Any]:
        """Validate a bearer token as ScaiKey would; raises ``jwt.InvalidTokenError`` subclasses."""
        claims = self.keyring.verify(token)
        if not self.valid_issuer(str(claims.get("iss", ""))):
            raise jwt.InvalidIssuerError("unknown issuer")
        if claims.get("jti") in self.store.revoked_jtis:
            raise jwt.InvalidTokenError("Token has been revoked")
        return claims

    # ------------------------------------------------------------- request log / faults
    def log_request(self, entry: dict[str, Any]) -> None:
        self.request_log.append(entry)
        if len(self.request_log) > 20000:
            del self.request_log[:5000]

    def match_faults(self, method: str, path: str) -> list[Fault]:
        from fnmatch import fnmatchcase

        hits = []
        for fault in list(self.faults):
            if fault.method and fault.method.upper() != method.upper():
                continue
            if not fnmatchcase(path, fault.path):
                continue
            fault.hits += 1
            hits.append(fault)
            if fault.times is not None and fault.hits >= fault.times:
                self.faults.remove(fault)
        return hits
