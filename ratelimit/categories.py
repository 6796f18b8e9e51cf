"""Rate-limit categories and their per-minute defaults, exactly spec core.md §9's table.

Bucket size = the per-minute limit; refill is continuous at limit/60 tokens per second.
"""

from __future__ import annotations

DEFAULT_LIMITS: dict[str, int] = {
    "read_secrets": 1000,           # GET /v1/secrets/{path}
    "write_secrets": 100,           # PUT /v1/secrets/{path}, metadata updates, restore
    "delete_secrets": 100,          # DELETE /v1/secrets/{path}
    "list_operations": 100,         # secret/version lists, metadata reads, policy/identity lists
    "batch_read": 100,              # POST /v1/secrets/batch (plus N read_secrets)
    "batch_metadata": 100,          # batch metadata
    "audit_queries": 50,            # GET /v1/audit/*
    "audit_export": 5,              # audit export
    "policy_operations": 50,        # /v1/policies* except test
    "policy_test": 200,             # POST /v1/policies/test
    "pki_issue": 50,                # PKI issue / sign
    "pki_admin": 20,                # PKI admin (CA, roles)
    "acme_order": 30,               # ACME order
    "webhook_operations": 20,       # /v1/webhooks*
    "subscription_operations": 20,  # subscriptions CRUD
    "subscription_poll": 240,       # one long-poll = one unit
    "federation_operations": 20,    # federation
    "dynamic_generate": 100,        # dynamic credential generation
    "dynamic_admin": 20,            # dynamic engine/role admin
    "lease_operations": 100,        # lease renew/revoke
    "identity_read": 100,           # GET /v1/identity/*
    "identity_sync": 5,             # POST /v1/identity/sync
    "auth": 300,                    # /v1/auth/whoami, /v1/auth/introspect (and the PAT endpoints)
    # decision (not in the spec's table): admin endpoints of this implementation (rate-limit settings).
    "admin_operations": 100,
}

# Other spellings routes may use; they share the canonical bucket.
ALIASES: dict[str, str] = {
    "read": "read_secrets", "secrets_read": "read_secrets", "write": "write_secrets",
    "secrets_write": "write_secrets", "delete": "delete_secrets", "secrets_delete": "delete_secrets",
    "list": "list_operations", "lists": "list_operations", "batch": "batch_read",
    "audit": "audit_queries", "audit_query": "audit_queries", "policies": "policy_operations",
    "policy": "policy_operations", "webhooks": "webhook_operations", "webhook": "webhook_operations",
    "subscriptions": "subscription_operations", "federation": "federation_operations",
    "dynamic": "dynamic_generate", "leases": "lease_operations", "lease": "lease_operations",
    "identity": "identity_read", "whoami": "auth", "introspect": "auth", "admin": "admin_operations",
}

# decision: an unknown category gets its own bucket at this limit (and a warning once), never a 500.
UNKNOWN_CATEGORY_LIMIT = 100


def canonical(category: str) -> str:
    return ALIASES.get(category, category)


def parse_overrides(text: str) -> dict[str, int]:
    """``"read_secrets=2000, write_secrets=200"`` -> {category: limit}; raises ValueError naming the entry."""
    out: dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = canonical(name.strip())
        if not sep or not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"RATE_LIMIT_OVERRIDES entry {part!r} must be category=<positive integer>")
        if name not in DEFAULT_LIMITS:
            raise ValueError(f"RATE_LIMIT_OVERRIDES names unknown category {name!r}")
        out[name] = int(value)
    return out
