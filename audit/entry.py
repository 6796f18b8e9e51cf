"""The audit entry: what one row of ``audit_log`` holds, and its public JSON shape (spec core.md §11.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

# spec §11.2 plus the actions of the endpoints this codebase has beyond secrets (auth, tokens, audit, admin).
SPEC_ACTIONS = (
    "read", "write", "delete", "list", "rotate", "policy_create", "policy_update", "policy_delete",
    "policy_bind", "policy_unbind", "pki_issue", "pki_sign", "pki_revoke", "pki_ca_create",
    "dynamic_generate", "dynamic_renew", "dynamic_revoke", "webhook_delivery", "subscription_event",
    "federation_sync", "identity_sync", "export_created",
)
EXTRA_ACTIONS = (
    "whoami", "introspect", "token_create", "token_list", "token_read", "token_revoke", "tenant_access",
    "audit_query", "audit_export", "audit_verify", "rate_limit_read", "rate_limit_update", "webhook_create",
    "webhook_update", "webhook_delete",
    "pki_ca_list", "pki_ca_read", "pki_ca_certificate", "pki_crl_rebuild", "pki_role_create", "pki_role_list",
    "pki_role_read", "pki_role_update", "pki_role_delete", "pki_certificate_list", "pki_certificate_read",
    "pki_csr_submit", "pki_csr_list", "pki_csr_read", "pki_csr_approve", "pki_csr_reject",
    "pki_trust_anchor_create", "pki_trust_anchor_list", "pki_trust_anchor_read", "pki_trust_anchor_delete",
    "pki_private_key_read",
    "federation_backend_create", "federation_backend_list", "federation_backend_read", "federation_backend_update",
    "federation_backend_delete", "federation_backend_status", "federation_conflict_list",
    "federation_conflict_resolve",
    "dynamic_engine_create", "dynamic_engine_list", "dynamic_engine_read", "dynamic_engine_update",
    "dynamic_engine_delete", "dynamic_role_create", "dynamic_role_list", "dynamic_role_read", "dynamic_role_update",
    "dynamic_role_delete", "dynamic_lease_list", "dynamic_lease_read", "dynamic_root_rotate",
    "pki_acme_renew", "pki_acme_order", "pki_acme_account_create", "pki_acme_account_list", "pki_acme_account_read",
    "pki_acme_account_delete", "pki_acme_order_create", "pki_acme_order_list", "pki_acme_order_read",
    "pki_acme_managed_read", "pki_acme_managed_control", "dns_provider_create", "dns_provider_list",
    "dns_provider_read", "dns_provider_update", "dns_provider_delete", "dns_provider_test",
    "rotation_policy_create", "rotation_policy_list", "rotation_policy_read", "rotation_policy_update",
    "rotation_policy_delete", "rotation_policy_enable", "rotation_policy_disable", "rotation_policy_attach",
    "rotation_policy_detach", "rotation_history", "rotation_due",
    "health_detailed", "policy_list", "policy_read", "webhook_list", "webhook_read", "webhook_deliveries",
    "webhook_redeliver", "subscription_create", "subscription_list", "subscription_read", "subscription_update",
    "subscription_delete", "subscription_ack", "secret_policy_create", "secret_policy_list", "secret_policy_read",
    "secret_policy_update", "secret_policy_delete", "secret_policy_preview", "secret_generate",
    "request",  # "request": an authenticated route that declared nothing
)
ACTIONS = frozenset(SPEC_ACTIONS + EXTRA_ACTIONS)

# Column order shared by the insert statements and AuditEntry.as_row().
COLUMNS = (
    "id", "tenant_id", "partner_id", "ts", "request_id", "correlation_id", "identity_id", "identity_type",
    "action", "resource_type", "resource_id", "secret_path", "permission", "version", "success", "error_code",
    "source_ip", "user_agent", "duration_ms", "extra_data",
)
PG_TYPES = (
    "text", "text", "text", "timestamptz", "text", "text", "text", "text", "text", "text", "text", "text",
    "text", "int4", "bool", "text", "text", "text", "float8", "text",
)


@dataclass(slots=True)
class AuditEntry:
    id: str
    tenant_id: str
    identity_id: str
    identity_type: str
    action: str
    success: bool
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    partner_id: str | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    secret_path: str | None = None
    permission: str | None = None
    version: int | None = None
    error_code: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    duration_ms: float | None = None
    extra_data: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> tuple[Any, ...]:
        """Values in COLUMNS order, each one PostgreSQL can store (``pg_text``); extra_data as JSON text (cast to
        jsonb in SQL, see ``pg_json``). One entry can therefore never fail a group-commit batch by its content."""
        t = pg_text
        return (
            t(self.id), t(self.tenant_id), t(self.partner_id), self.ts, t(self.request_id), t(self.correlation_id),
            t(self.identity_id), t(self.identity_type), t(self.action), t(self.resource_type), t(self.resource_id),
            t(self.secret_path), t(self.permission), self.version, self.success, t(self.error_code),
            t(self.source_ip), t(self.user_agent), self.duration_ms, pg_json(self.extra_data),
        )


_NUL_ESCAPE = "\\u0000"  # the six characters \u0000, as JSON would write a NUL


def pg_text(value: Any) -> Any:
    """``value`` as a PostgreSQL text column can hold it: NUL (refused by text and jsonb) becomes the six
    characters ``\\u0000``, and lone surrogates (not encodable as UTF-8) become ``\\udXXX``. Anything already
    storable, and non-strings, are returned as they are (the common case costs two scans of short strings)."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", _NUL_ESCAPE)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def pg_json(value: dict[str, Any]) -> str:
    """``value`` as JSON text that jsonb accepts: jsonb refuses the ``\\u0000`` escape, and orjson refuses lone
    surrogates, so strings (keys too) holding either are passed through ``pg_text`` first."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return orjson.dumps(_clean(value)).decode()
    return orjson.dumps(_clean(value)).decode() if _NUL_ESCAPE in text else text


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else (value or {})


def public(row: Any) -> dict[str, Any]:
    """The documented entry shape (plus tenant/partner, resource and error). The chain position lives in
    ``audit_seals``, not in the row."""
    return {
        "id": row["id"],
        "timestamp": iso(row["ts"]),
        "action": row["action"],
        "identity_type": row["identity_type"],
        "identity_id": row["identity_id"],
        "secret_path": row["secret_path"],
        "resource_type": row["resource_type"],
        "resource_id": row["resource_id"],
        "permission": row["permission"],
        "version": row["version"],
        "source_ip": row["source_ip"],
        "user_agent": row["user_agent"],
        "success": row["success"],
        "error_code": row["error_code"],
        "duration_ms": row["duration_ms"],
        "request_id": row["request_id"],
        "correlation_id": row["correlation_id"],
        "tenant_id": row["tenant_id"],
        "partner_id": row["partner_id"],
        "extra_data": _json(row["extra_data"]),
    }
