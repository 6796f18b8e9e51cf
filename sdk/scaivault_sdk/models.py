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


def _strs(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


# ------------------------------------------------------------------------------------------------ PKI


@dataclass(frozen=True)
class CertificateAuthority:
    """A root or intermediate CA (``/v1/pki/ca``). Its private key never leaves the server."""

    id: str
    name: str
    common_name: str
    ca_type: str
    parent_ca_id: str | None
    serial_number: str | None
    valid_until: datetime | None
    is_active: bool
    revoked_at: datetime | None
    crl_url: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CertificateAuthority:
        return cls(id=str(d.get("id")), name=str(d.get("name") or ""), common_name=str(d.get("common_name") or ""),
                   ca_type=str(d.get("ca_type") or ""), parent_ca_id=d.get("parent_ca_id"),
                   serial_number=d.get("serial_number"), valid_until=_dt(d.get("valid_until")),
                   is_active=bool(d.get("is_active")), revoked_at=_dt(d.get("revoked_at")), crl_url=d.get("crl_url"),
                   raw=d)


@dataclass(frozen=True)
class Certificate:
    """An issued certificate's record (list, get, revoke). ``certificate`` (PEM) is set by ``get`` only."""

    id: str
    serial_number: str
    common_name: str | None
    alt_names: list[str]
    ip_sans: list[str]
    ca_id: str | None
    role: str | None
    not_before: datetime | None
    not_after: datetime | None
    revoked: bool
    revoked_at: datetime | None
    revocation_reason: str | None
    certificate: str | None = field(repr=False)
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Certificate:
        return cls(id=str(d.get("id")), serial_number=str(d.get("serial_number") or ""),
                   common_name=d.get("common_name"), alt_names=_strs(d.get("alt_names")),
                   ip_sans=_strs(d.get("ip_sans")), ca_id=d.get("ca_id"), role=d.get("role"),
                   not_before=_dt(d.get("not_before")), not_after=_dt(d.get("not_after")),
                   revoked=bool(d.get("revoked")), revoked_at=_dt(d.get("revoked_at")),
                   revocation_reason=d.get("revocation_reason"), certificate=d.get("certificate"), raw=d)


@dataclass(frozen=True)
class IssuedCertificate:
    """The answer of ``pki.issue`` / ``pki.sign``: the certificate, its chain and (issue only) the private key.

    ``private_key`` is in this object only (the server does not store it unless the role says so); it is masked
    in the repr and left out of ``raw``.
    """

    id: str
    serial_number: str
    common_name: str | None
    not_after: datetime | None
    certificate: str = field(repr=False)
    issuing_ca: str | None = field(repr=False)
    ca_chain: list[str] = field(repr=False)
    private_key: str | None = field(repr=False)
    private_key_type: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IssuedCertificate:
        return cls(id=str(d.get("id")), serial_number=str(d.get("serial_number") or ""),
                   common_name=d.get("common_name"), not_after=_dt(d.get("not_after")),
                   certificate=str(d.get("certificate") or ""), issuing_ca=d.get("issuing_ca"),
                   ca_chain=_strs(d.get("ca_chain")), private_key=d.get("private_key"),
                   private_key_type=d.get("private_key_type"),
                   raw={k: v for k, v in d.items() if k != "private_key"})

    def __repr__(self) -> str:
        key = "***" if self.private_key else None
        return (f"IssuedCertificate(id={self.id!r}, serial_number={self.serial_number!r}, "
                f"common_name={self.common_name!r}, not_after={self.not_after!r}, private_key={key})")


# ------------------------------------------------------------------------------------------------ rotation


@dataclass(frozen=True)
class RotationPolicy:
    """A rotation policy (``/v1/rotation/policies``)."""

    id: str
    name: str
    interval: str | None
    grace_period: str | None
    warn_before: str | None
    auto_generate: bool
    secret_policy_id: str | None
    is_active: bool
    secrets_count: int | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RotationPolicy:
        return cls(id=str(d.get("id")), name=str(d.get("name") or ""), interval=d.get("interval"),
                   grace_period=d.get("grace_period"), warn_before=d.get("warn_before"),
                   auto_generate=bool(d.get("auto_generate")), secret_policy_id=d.get("secret_policy_id"),
                   is_active=bool(d.get("is_active", True)), secrets_count=_int(d.get("secrets_count")), raw=d)


@dataclass(frozen=True)
class RotationHistoryItem:
    """One rotation (pending, completed or failed): ``rotate`` answers and ``history`` rows."""

    id: str
    policy_id: str | None
    secret_path: str
    status: str
    trigger: str | None
    old_version: int | None
    new_version: int | None
    started_at: datetime | None
    completed_at: datetime | None
    error: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RotationHistoryItem:
        return cls(id=str(d.get("id")), policy_id=d.get("policy_id"), secret_path=str(d.get("secret_path") or ""),
                   status=str(d.get("status") or ""), trigger=d.get("trigger"),
                   old_version=_int(d.get("old_version")), new_version=_int(d.get("new_version")),
                   started_at=_dt(d.get("started_at")), completed_at=_dt(d.get("completed_at")),
                   error=d.get("error") if isinstance(d.get("error"), dict) else None, raw=d)


# ------------------------------------------------------------------------------------------------ dynamic


@dataclass(frozen=True)
class Lease:
    """A dynamic-credential lease (never its credential): list, get, renew and revoke answers."""

    lease_id: str
    engine: str
    role: str
    username: str | None
    status: str
    expires_at: datetime | None
    max_expires_at: datetime | None
    ttl_seconds: int | None
    renewable: bool
    created_by: str | None
    last_error: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lease:
        return cls(lease_id=str(d.get("lease_id") or d.get("id")), engine=str(d.get("engine") or ""),
                   role=str(d.get("role") or ""), username=d.get("username"), status=str(d.get("status") or ""),
                   expires_at=_dt(d.get("expires_at")), max_expires_at=_dt(d.get("max_expires_at")),
                   ttl_seconds=_int(d.get("ttl_seconds")), renewable=bool(d.get("renewable")),
                   created_by=d.get("created_by"), last_error=d.get("last_error"), raw=d)


@dataclass(frozen=True)
class DynamicCredential:
    """A generated credential and its lease. ``data`` (``username``/``password``, or AWS keys) exists only in
    this answer; it is masked in the repr and left out of ``raw``. ``lease`` has the lease fields."""

    lease_id: str
    data: dict[str, Any] = field(repr=False)
    lease: Lease
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DynamicCredential:
        public = {k: v for k, v in d.items() if k != "data"}
        data = d.get("data")
        return cls(lease_id=str(d.get("lease_id")), data=data if isinstance(data, dict) else {},
                   lease=Lease.from_json(public), raw=public)

    @property
    def expires_at(self) -> datetime | None:
        return self.lease.expires_at

    def __repr__(self) -> str:
        return (f"DynamicCredential(lease_id={self.lease_id!r}, engine={self.lease.engine!r}, "
                f"role={self.lease.role!r}, expires_at={self.lease.expires_at!r}, data=***)")


# ------------------------------------------------------------------------------------------------ federation


@dataclass(frozen=True)
class FederationBackend:
    """A federated backend (HashiCorp Vault, AWS Secrets Manager). Its credentials live in a ScaiVault secret
    named by ``config``; they are never in this object."""

    id: str
    name: str
    type: str
    mode: str
    path_mapping: dict[str, str]
    sync_interval: str | None
    status: str | None
    last_sync: datetime | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FederationBackend:
        mapping = d.get("path_mapping")
        return cls(id=str(d.get("id")), name=str(d.get("name") or ""), type=str(d.get("type") or ""),
                   mode=str(d.get("mode") or ""), path_mapping=dict(mapping) if isinstance(mapping, dict) else {},
                   sync_interval=d.get("sync_interval"), status=d.get("status"), last_sync=_dt(d.get("last_sync")),
                   raw=d)
