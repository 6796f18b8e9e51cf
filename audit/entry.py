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
    "webhook_update", "webhook_delete", "request",  # "request": an authenticated route that declared nothing
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
        """Values in COLUMNS order; extra_data as JSON text (cast to jsonb in SQL)."""
        return (
            self.id, self.tenant_id, self.partner_id, self.ts, self.request_id, self.correlation_id,
            self.identity_id, self.identity_type, self.action, self.resource_type, self.resource_id,
            self.secret_path, self.permission, self.version, self.success, self.error_code, self.source_ip,
            self.user_agent, self.duration_ms, orjson.dumps(self.extra_data).decode(),
        )


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
