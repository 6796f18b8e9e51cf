"""Typed results (dataclasses). Each keeps the full JSON object in ``raw`` so fields added by newer servers
stay reachable before the SDK names them.

Secret values live only in ``Secret.data`` and ``BatchReadResult.secrets``; their reprs mask the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list; ``cursor`` is None on the last page."""

    items: list[T]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class Secret:
    """A secret version with its value (``GET /v1/secrets/{path}``)."""

    path: str
    version: int | None
    secret_type: str
    data: Any = field(repr=False)
    metadata: dict[str, Any]
    created_at: datetime | None
    expires_at: datetime | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any], path: str | None = None) -> Secret:
        return cls(path=str(d.get("path") or path or ""), version=_int(d.get("version")),
                   secret_type=str(d.get("secret_type") or "kv"), data=d.get("data"),
                   metadata=d.get("metadata") or {}, created_at=_dt(d.get("created_at")),
                   expires_at=_dt(d.get("expires_at")), raw=d)

    def __repr__(self) -> str:
        return f"Secret(path={self.path!r}, version={self.version}, secret_type={self.secret_type!r}, data=***)"


@dataclass(frozen=True)
class SecretMetadata:
    """Everything about a secret except its value (metadata read, list rows, write/patch answers)."""

    path: str
    secret_type: str
    version: int | None
    version_count: int | None
    metadata: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None
    deleted_at: datetime | None
    rotation_status: Any
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SecretMetadata:
        return cls(path=str(d.get("path") or ""), secret_type=str(d.get("secret_type") or ""),
                   version=_int(d.get("current_version")) or _int(d.get("version")),
                   version_count=_int(d.get("version_count")), metadata=d.get("metadata") or {},
                   created_at=_dt(d.get("created_at")), updated_at=_dt(d.get("updated_at")),
                   expires_at=_dt(d.get("expires_at")), deleted_at=_dt(d.get("deleted_at")),
                   rotation_status=d.get("rotation_status"), raw=d)


@dataclass(frozen=True)
class SecretVersion:
    version: int
    created_at: datetime | None
    created_by: str | None
    is_current: bool
    expires_at: datetime | None
    destroyed: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SecretVersion:
        return cls(version=int(d.get("version") or 0), created_at=_dt(d.get("created_at")),
                   created_by=d.get("created_by"), is_current=bool(d.get("is_current")),
                   expires_at=_dt(d.get("expires_at")), destroyed=bool(d.get("destroyed")), raw=d)


@dataclass(frozen=True)
class ItemError:
    """One path's failure inside a batch answer."""

    code: str
    message: str


@dataclass(frozen=True)
class BatchReadResult:
    """``secrets``: path -> Secret for every path read; ``errors``: path -> ItemError (partial success)."""

    secrets: dict[str, Secret] = field(repr=False)
    errors: dict[str, ItemError]

    def __repr__(self) -> str:
        return f"BatchReadResult(secrets={sorted(self.secrets)}, errors={self.errors!r})"


@dataclass(frozen=True)
class Policy:
    id: str
    name: str
    description: str | None
    rules: list[dict[str, Any]]
    is_active: bool
    scope: str | None
    bindings: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Policy:
        return cls(id=str(d.get("id")), name=str(d.get("name")), description=d.get("description"),
                   rules=list(d.get("rules") or []), is_active=bool(d.get("is_active", True)),
                   scope=d.get("scope"), bindings=list(d.get("bindings") or []), raw=d)


@dataclass(frozen=True)
class PolicyBinding:
    id: str
    identity_type: str
    identity_id: str
    expires_at: datetime | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PolicyBinding:
        return cls(id=str(d.get("id")), identity_type=str(d.get("identity_type")),
                   identity_id=str(d.get("identity_id")), expires_at=_dt(d.get("expires_at")), raw=d)


@dataclass(frozen=True)
class PolicyTestResult:
    """The dry-run decision of ``POST /v1/policies/test``; ``reason`` says why when not allowed."""

    allowed: bool
    reason: str | None
    matched_policy: dict[str, Any] | None
    matched_rule: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PolicyTestResult:
        return cls(allowed=bool(d.get("allowed")), reason=d.get("reason"), matched_policy=d.get("matched_policy"),
                   matched_rule=d.get("matched_rule"), raw=d)


@dataclass(frozen=True)
class AuditEntry:
    id: Any
    timestamp: datetime | None
    action: str
    identity_id: str | None
    secret_path: str | None
    success: bool
    request_id: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AuditEntry:
        return cls(id=d.get("id"), timestamp=_dt(d.get("timestamp")), action=str(d.get("action") or ""),
                   identity_id=d.get("identity_id"), secret_path=d.get("secret_path") or d.get("path"),
                   success=bool(d.get("success")), request_id=d.get("request_id"), raw=d)


@dataclass(frozen=True)
class Whoami:
    identity_id: str
    identity_type: str
    tenant_id: str | None
    partner_id: str | None
    scopes: list[str]
    groups: list[str]
    roles: list[str]
    token_expires_at: datetime | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Whoami:
        return cls(identity_id=str(d.get("identity_id")), identity_type=str(d.get("identity_type")),
                   tenant_id=d.get("tenant_id"), partner_id=d.get("partner_id"), scopes=list(d.get("scopes") or []),
                   groups=list(d.get("groups") or []), roles=list(d.get("roles") or []),
                   token_expires_at=_dt(d.get("token_expires_at")), raw=d)


@dataclass(frozen=True)
class AccessToken:
    """A personal access token; ``token`` (the value) is set only in the answer that created it."""

    id: str
    name: str | None
    scopes: list[str]
    expires_at: datetime | None
    token: str | None = field(repr=False)
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AccessToken:
        scopes = d.get("scopes") or []
        if isinstance(scopes, str):
            scopes = scopes.split()
        return cls(id=str(d.get("id")), name=d.get("name"), scopes=list(scopes), expires_at=_dt(d.get("expires_at")),
                   token=d.get("token"), raw={k: v for k, v in d.items() if k != "token"})


@dataclass(frozen=True)
class Record:
    """A resource the SDK does not model field by field yet (identity cache rows, webhooks, subscriptions).

    ``id`` when the object has one; everything else through ``raw`` or ``record["field"]``.
    """

    id: str | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Record:
        ident = d.get("id") or d.get("sync_id")
        return cls(id=str(ident) if ident is not None else None, raw=d)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)
