"""Typed request bodies for the OpenAPI description of routes that parse their JSON body themselves.

The policy and secret-policy routers take the body as a JSON object and let the service validate it, so every
problem gets its documented code (``invalid_policy`` / ``invalid_config`` with ``details.field``). These models
describe those bodies for clients and fuzzers only; they never validate a request. ``apply_request_bodies``
(called by api/openapi.py ``build_openapi``) puts them in ``components.schemas`` and points each operation's
``requestBody`` at its model; ``EXAMPLES`` adds an example to every typed body of this area (tokens, webhooks
and subscriptions are validated by their own pydantic models, which this only decorates).

Keep them true to the parsers: policy/parser.py (policies), services/policies.py ``_parse_binding``,
secretgen/model.py (secret policies), core/durations.py (durations). tests/integration/test_openapi_bodies.py
sends each example and checks the route accepts it.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from policy.parser import MAX_DESCRIPTION, MAX_RULES

Permission = Literal["read", "write", "delete", "list", "rotate", "admin"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: core/durations.py: an integer count of seconds, or digits and one unit (s, m, h, d, w).
DURATION_PATTERN = r"^\s*[0-9]{1,9}\s*[smhdw]\s*$"
POLICY_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
IDENTITY_PATTERN = r"^(user|sa|group):\S{1,318}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeWindow(_Strict):
    days: list[Day] = Field(min_length=1, max_length=7)
    start: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", examples=["08:00"])
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", examples=["18:00"])
    timezone: str = Field(default="UTC", max_length=64, description="IANA zone name", examples=["Europe/Berlin"])


class RuleConditions(_Strict):
    ip_ranges: list[str] | None = Field(default=None, min_length=1, description="CIDRs; all must be valid",
                                        examples=[["10.0.0.0/8"]])
    require_mfa: bool = False
    mfa_max_age: int | str | None = Field(default=None, description="seconds, or a duration like `15m` "
                                          "(1 s to 30 days); default 15 minutes")
    time_window: TimeWindow | None = None


class PolicyRule(_Strict):
    path_pattern: str = Field(min_length=1, max_length=512, description="glob: `*` one segment, `**` any depth",
                              examples=["apps/billing/**"])
    permissions: list[Permission] = Field(min_length=1, max_length=6)
    effect: Literal["allow", "deny"] = "allow"
    conditions: RuleConditions | None = None


class PolicyCreate(_Strict):
    """POST /v1/policies. Errors: `400 invalid_policy` with `details.field` (and `details.fields[]`)."""

    name: str = Field(pattern=POLICY_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    scope: Literal["tenant", "partner"] = Field(default="tenant", description="partner: partner admins only")
    is_active: bool = True
    rules: list[PolicyRule] = Field(min_length=1, max_length=MAX_RULES)


class PolicyReplace(PolicyCreate):
    """PUT /v1/policies/{id}: name, description and rules replaced; bindings kept; `scope` cannot change.
    (Read-only keys of a GET body echoed back are ignored by the server.)"""


class PolicyPatch(_Strict):
    """PATCH /v1/policies/{id}: any subset."""

    name: str | None = Field(default=None, pattern=POLICY_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    scope: Literal["tenant", "partner"] | None = Field(default=None, description="must equal the current scope")
    is_active: bool | None = None
    rules: list[PolicyRule] | None = Field(default=None, min_length=1, max_length=MAX_RULES)


class BindingCreate(_Strict):
    """POST /v1/policies/{id}/bindings. The id's prefix must match the type (`user:`, `sa:`, `group:`)."""

    identity_type: Literal["user", "service_account", "group"]
    identity_id: str = Field(pattern=IDENTITY_PATTERN, examples=["group:developers", "sa:ci-deployer"])
    expires_at: datetime | None = Field(default=None, description="ISO-8601, in the future; none: never expires")


Generator = Literal["random", "hex", "uuid", "template", "rsa_keypair", "ec_keypair", "ssh_keypair", "bcrypt_hash",
                    "static"]


class GeneratorField(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$", description="key in the generated `data`")
    generator: Generator
    config: dict[str, Any] | None = Field(default=None, description=(
        "generator options (docs/policies.md 'Value-generation policies'): random `length`, `charset`, "
        "`require_upper|lower|digit|symbol`, `exclude`; hex `length`; uuid `version` (4|7); template `template`; "
        "rsa_keypair `bits`; ec_keypair `curve`; ssh_keypair `key_type`, `comment`; bcrypt_hash `length`, "
        "`rounds`; static `value`"))


class SecretPolicyCreate(_Strict):
    """POST/PUT /v1/secret-policies. Errors: `400 invalid_config` / `422 validation_error` naming the field."""

    name: str = Field(min_length=1, max_length=128)
    policy_type: Literal["password", "api_key", "oauth_client", "ssh_key", "custom"] = "custom"
    description: str | None = Field(default=None, max_length=1024)
    is_active: bool = True
    fields: list[GeneratorField] = Field(min_length=1, max_length=50)


class SecretPolicyPatch(_Strict):
    """PATCH /v1/secret-policies/{id}: any subset."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    policy_type: Literal["password", "api_key", "oauth_client", "ssh_key", "custom"] | None = None
    description: str | None = Field(default=None, max_length=1024)
    is_active: bool | None = None
    fields: list[GeneratorField] | None = Field(default=None, min_length=1, max_length=50)


_RULES = [{"path_pattern": "apps/billing/**", "permissions": ["read", "list"]},
          {"path_pattern": "apps/billing/prod/**", "permissions": ["read"],
           "conditions": {"ip_ranges": ["10.0.0.0/8"], "require_mfa": True, "mfa_max_age": "15m"}}]
_FIELDS = [{"name": "password", "generator": "random",
            "config": {"length": 32, "charset": "alphanumeric", "require_digit": True}}]

#: component name -> request example (also set as the operation's requestBody example).
EXAMPLES: dict[str, dict[str, Any]] = {
    "PolicyCreate": {"name": "billing-read", "description": "Billing service reads its config", "rules": _RULES},
    "PolicyReplace": {"name": "billing-read", "description": "Billing service reads its config", "rules": _RULES},
    "PolicyPatch": {"is_active": False},
    "BindingCreate": {"identity_type": "service_account", "identity_id": "sa:billing-api"},
    "SecretPolicyCreate": {"name": "db-passwords", "policy_type": "password", "fields": _FIELDS},
    "SecretPolicyPatch": {"description": "32-char alphanumeric passwords"},
    "TokenCreate": {"name": "ci-read", "scopes": ["secrets:read"], "expires_in": "30d"},
    "WebhookCreate": {"name": "billing-cache", "url": "https://billing.example.com/hooks/scaivault",
                      "secret": "whsec_3f1c2b7e9d4a8c6b5e0f1a2d3c4b5a69", "events": ["secret.updated", "secret.deleted"],
                      "filters": {"path_prefix": "apps/billing/"}},
    "WebhookUpdate": {"events": ["secret.*"]},
    "SubscriptionCreate": {"name": "billing-poll", "paths": ["apps/billing/**"], "events": ["secret.*"],
                           "delivery": {"type": "polling"}},
    "SubscriptionUpdate": {"paths": ["apps/billing/**", "shared/**"]},
    "AckBody": {"event_ids": ["evt_01JQ8ZK5M4XG7R2W9T3V6Y1B0C"]},
}

#: (method, path) -> model, for routes whose generated body is an untyped object.
REQUEST_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/v1/policies"): PolicyCreate,
    ("put", "/v1/policies/{policy_id}"): PolicyReplace,
    ("patch", "/v1/policies/{policy_id}"): PolicyPatch,
    ("post", "/v1/policies/{policy_id}/bindings"): BindingCreate,
    ("post", "/v1/secret-policies"): SecretPolicyCreate,
    ("put", "/v1/secret-policies/{policy_id}"): SecretPolicyCreate,
    ("patch", "/v1/secret-policies/{policy_id}"): SecretPolicyPatch,
}

#: extra JSON-schema keywords for properties of the routers' own models (component, property) -> keywords.
PROPERTY_HINTS: dict[tuple[str, str], dict[str, Any]] = {
    ("TokenCreate", "expires_in"): {
        "description": "lifetime: a duration like `30d`, `12h`, `90m`, `3600s` or `2w` (1 s to 366 days; a PAT "
                       "made by a PAT never outlives it); default `PAT_DEFAULT_TTL_DAYS` (90d)",
        "examples": ["30d"]},
    ("WebhookUpdate", "previous_secret_ttl"): {"examples": ["24h"]},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def apply_request_bodies(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Point the untyped bodies at their models and add the examples (in place; see the module doc)."""
    for (method, path), model in REQUEST_BODIES.items():
        op = paths.get(path, {}).get(method)
        if op is None:
            continue
        if model.__name__ not in schemas:
            js = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
            for name, sub in js.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas[model.__name__] = js
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(model.__name__)}}}
    for (name, prop), hints in PROPERTY_HINTS.items():
        target = schemas.get(name, {}).get("properties", {}).get(prop)
        if target is not None:
            target.update(copy.deepcopy(hints))
    for item in paths.values():
        for op in item.values():
            media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            name = str(media.get("schema", {}).get("$ref", "")).rsplit("/", 1)[-1]
            if name in EXAMPLES:
                media.setdefault("example", copy.deepcopy(EXAMPLES[name]))
                schemas.get(name, {}).setdefault("examples", [copy.deepcopy(EXAMPLES[name])])
