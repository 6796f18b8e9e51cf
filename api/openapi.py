"""The OpenAPI description served at ``/openapi.json`` (and ``/docs``).

FastAPI generates the operations of its ``APIRoute``s. The secrets routes (``api/routers/secrets.py``) are plain
Starlette routes kept out of FastAPI's schema for speed, so they are described here by hand, from small pydantic
models, and merged in. On top of that this module:

* adds the ``ErrorEnvelope`` schema and documents every error response with it (FastAPI's default 422
  ``HTTPValidationError`` is replaced: ``api/errors.py`` answers validation failures with the envelope too);
* adds the ``bearerAuth`` HTTP bearer scheme to every operation except ``PUBLIC_OPERATIONS`` (health, version,
  metrics and the HMAC-signed ScaiKey webhook receiver); secrets operations name their scope in it;
* caches the document in ``app.openapi_schema``.

``install_openapi(app)`` is called once by ``api.app.create_app``. When a secrets route changes, change
``SECRET_OPERATIONS`` below and docs/secrets.md; tests/integration/test_openapi.py fails when a registered route
has no documented operation.
"""

from __future__ import annotations

import copy
import enum
import inspect
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import JsonSchemaMode, SkipJsonSchema, models_json_schema

from core.errors import status_for
from services.secrets import input as inp
from services.secrets.service import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, MAX_BATCH, MAX_EXPANDED

REF = "#/components/schemas/{model}"
JSON_MEDIA = "application/json"
BEARER = "bearerAuth"

# (method, path) of operations that take no bearer token.
PUBLIC_OPERATIONS: frozenset[tuple[str, str]] = frozenset({
    ("get", "/v1/health"), ("get", "/v1/health/ready"),
    ("get", "/v1/version"), ("get", "/v1/metrics"), ("get", "/metrics"),
    ("post", "/v1/identity/webhooks/scaikey"),
    ("get", "/v1/pki/ca/{ca_id}/crl"),  # relying parties fetch CRLs without a token (docs/pki.md)
    ("get", "/.well-known/acme-challenge/{token}"),  # the ACME CA's http-01 probe (docs/acme.md)
})

API_DESCRIPTION = """

**Authentication.** Send `Authorization: Bearer <token>`: a ScaiKey JWT or a ScaiVault personal access token
(`skt_...`). Each operation names the scope it needs; a token without it gets `403 insufficient_scope`.

**Tenant.** The effective tenant is, in order: the path prefix `/v1/t/{tenant_id}/...` (every `/v1/...` route also
answers under it, e.g. `/v1/t/tnt_x/secrets/app/db`), the `X-Tenant-ID` header, or the token's own tenant.
Switching tenant needs partner-admin privileges.

**Requests.** `X-Request-ID` is accepted (or generated) and echoed on every response, and appears as
`error.request_id`. Secret paths are `/`-separated lower-case segments (`[a-z0-9_-]`, at most 10 segments and
512 characters); the `{path}` parameter of the secrets routes spans those `/`s, and sub-resources use a
`:suffix` (`:metadata`, `:versions`, `:restore`, `:destroy`), since `:` never occurs in a path.

**System.** `/v1/health` (liveness), `/v1/health/ready` (readiness: `database`, `redis`, `encryption`),
`/v1/version` and `/v1/metrics` take no token and are rate-limited per client address (`429 rate_limited`);
`/v1/health/detailed` needs scope `admin` and also reports Temporal, which does not affect readiness."""

# ------------------------------------------------------------------------------------------------ models


class ErrorBody(BaseModel):
    code: str = Field(description="Stable error code (core/errors.py), e.g. `secret_not_found`")
    message: str = Field(description="Human-readable; never contains secret values")
    details: dict[str, Any] = Field(description="Code-specific details, e.g. `fields` for `validation_error`")
    request_id: str = Field(description="The request id (also in the `X-Request-ID` response header)")


class ErrorEnvelope(BaseModel):
    """Every error response has this shape."""

    error: ErrorBody


SecretType = enum.StrEnum("SecretType", [(t, t) for t in inp.SECRET_TYPES])  # type: ignore[misc]
SecretType.__doc__ = ("A hint for consumers; storage is identical and any non-empty object is accepted for every type. "
                      "Conventions: kv {\"key\": \"value\"}; json: any object; certificate: cert_pem, key_pem, "
                      "chain_pem; ssh_key: private_key, public_key; api_key: key.")
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}$")]
Duration = Annotated[str | int, Field(description="A duration like `90d`, `48h`, `15m`, `30s`, `2w`, or seconds",
                                      examples=["90d"])]
Timestamp = Annotated[datetime, Field(description="ISO-8601 UTC with a `Z` suffix")]


def _optional(schema: dict[str, Any]) -> None:
    """For fields that are absent rather than null: no (null) default in the schema."""
    schema.pop("default", None)


PartnerScope = Annotated[Literal["partner"] | SkipJsonSchema[None],
                         Field(description="Present (`partner`) only on partner secrets", json_schema_extra=_optional)]


class SecretMetadataIn(BaseModel):
    """Plaintext, searchable metadata (at most 16 KiB). Other JSON keys are kept too."""

    model_config = ConfigDict(extra="allow")
    description: str | None = Field(None, max_length=1024)
    tags: list[Tag] | None = Field(None, max_length=inp.MAX_TAGS, description="Duplicates are dropped")
    owner: str | None = Field(None, max_length=1024)
    custom: dict[str, Any] | None = None


class SecretOptionsPatch(BaseModel):
    """Write options. Except ``expires_in`` they are sticky: they apply to later writes until changed."""

    model_config = ConfigDict(extra="forbid")
    max_versions: int | None = Field(None, ge=1, le=inp.MAX_VERSIONS_LIMIT,
                                     description="Versions kept (older ones are pruned); null = unlimited")
    expires_in: Duration | None = Field(None, description="Expiry of this version only (`expires_at = now + d`)")
    rotation_policy_id: str | None = Field(None, pattern=r"^rot_[A-Za-z0-9_\-]*$")
    secret_policy_id: str | None = Field(None, pattern=r"^sp_[A-Za-z0-9_\-]*$")
    notify_before: str | list[str] | None = Field(
        None, description="Expiry notice offsets: `\"30d,7d,1d\"` or a list", examples=["30d,7d,1d"])


class SecretOptions(SecretOptionsPatch):
    cas: int | None = Field(None, ge=0, le=2**31 - 1, description="Check-and-set: 0 = the path must not exist, "
                            "N = the current version must be N (else `409 version_conflict`)")


class SecretWrite(BaseModel):
    """PUT body: a new version."""

    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any] = Field(min_length=1, description="The secret value: any non-empty JSON object (at most "
                                 "128 KiB as JSON), whatever the `secret_type`")
    secret_type: SecretType | None = Field(None, description="Defaults to `kv` on create; unchanged on update")
    metadata: SecretMetadataIn | None = Field(None, description="Replaces the stored metadata when present")
    options: SecretOptions | None = None


class SecretPatch(BaseModel):
    """PATCH body: metadata and options only; never a new version. ``secret_type`` is refused (422)."""

    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, Any] | None = Field(None, description="Shallow merge; a key set to null is removed")
    options: SecretOptionsPatch | None = Field(None, description="As for PUT, without `cas`; lowering "
                                               "`max_versions` prunes at once")


class CertificateHints(BaseModel):
    """Parsed from the first certificate in `data.cert_pem` (a hint; absent when it does not parse)."""

    subject: str = Field(description="RFC 4514, e.g. `CN=api.example.com`")
    issuer: str
    serial_number: str = Field(description="Lower-case hex")
    not_before: Timestamp
    not_after: Timestamp
    fingerprint_sha256: str = Field(description="Of the DER encoding, lower-case hex")


Parsed = Annotated[CertificateHints | SkipJsonSchema[None],
                   Field(description="`certificate` secrets whose `cert_pem` parses: its validity and names",
                         json_schema_extra=_optional)]


class Secret(BaseModel):
    """A secret value (GET)."""

    path: str
    secret_type: SecretType
    version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp | None = Field(description="Expiry of the version read")
    rotation_policy_id: str | None
    scope: PartnerScope = None
    parsed: Parsed = None


class SecretWritten(BaseModel):
    """PUT response: the new version, without `data`."""

    path: str
    secret_type: SecretType
    version: int
    metadata: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp | None
    rotation_policy_id: str | None
    secret_policy_id: str | None
    max_versions: int | None
    scope: PartnerScope = None


class SecretMetadata(BaseModel):
    """Everything about a secret except its value."""

    path: str
    secret_type: SecretType
    version: int = Field(description="Same as current_version")
    current_version: int
    version_count: int
    metadata: dict[str, Any]
    max_versions: int | None
    created_at: Timestamp
    created_by: str | None
    updated_at: Timestamp
    updated_by: str | None
    expires_at: Timestamp | None
    last_accessed_at: Timestamp | None = Field(description="Batched; may lag by a few seconds")
    rotation_policy_id: str | None
    secret_policy_id: str | None
    notify_before: str | None
    rotation_status: str | None = Field(description="Always null until rotation is wired")
    deleted_at: Timestamp | None
    recoverable_until: Timestamp | None
    scope: Literal["tenant", "partner"]


class SecretVersion(BaseModel):
    version: int
    created_at: Timestamp
    created_by: str | None
    is_current: bool
    expires_at: Timestamp | None
    destroyed: bool
    destroyed_at: Timestamp | None


class SecretVersions(BaseModel):
    path: str
    current_version: int
    versions: list[SecretVersion]


class SecretList(BaseModel):
    secrets: list[SecretMetadata]
    cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    has_more: bool


class SecretDestroy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    versions: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=100)


class SecretDestroyed(BaseModel):
    path: str
    destroyed: list[int]


class RotationRequested(BaseModel):
    """A RotationHistoryItem (docs/rotation.md), ``pending`` until the secret's workflow completes it."""

    id: str
    policy_id: str
    secret_path: str
    status: str = Field(description="pending | success | failed")
    trigger: str
    cycle: int
    old_version: int | None
    new_version: int | None
    auto_generated: bool
    started_at: str | None
    completed_at: str | None
    grace_period_ends: str | None
    attempt: int
    error: dict[str, Any] | None


class BatchItemError(BaseModel):
    code: str
    message: str


class BatchReadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_metadata: bool = False
    fail_fast: bool = Field(False, description="The first failure (in request order) becomes the whole response")
    version: int | None = Field(None, ge=1, description="Read every path at this version")


class BatchRead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(min_length=1, max_length=MAX_BATCH, description="Duplicates are collapsed")
    options: BatchReadOptions | None = None


class BatchSecret(BaseModel):
    data: dict[str, Any]
    version: int
    secret_type: SecretType
    metadata: SecretMetadata | SkipJsonSchema[None] = Field(None, description="With `include_metadata` only",
                                                            json_schema_extra=_optional)
    parsed: Parsed = None


class BatchReadResult(BaseModel):
    secrets: dict[str, BatchSecret]
    errors: dict[str, BatchItemError]


class BatchMetadataOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expand_wildcards: bool = Field(False, description=f"Expand `*`/`?` globs server-side (at most {MAX_EXPANDED} "
                                   "paths); without it a pattern is an `invalid_path` entry")


class BatchMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    options: BatchMetadataOptions | None = None


class BatchMetadataResult(BaseModel):
    secrets: dict[str, SecretMetadata]
    errors: dict[str, BatchItemError]


# -------------------------------------------------------------------------------------------- operations

# Errors any authenticated secrets operation can return (authentication, tenant resolution, policy, rate limit,
# audit fail-closed, unexpected).
AUTH_ERRORS = ("authentication_required", "token_invalid", "token_expired", "token_revoked", "insufficient_scope",
               "tenant_access_denied", "access_denied", "tenant_not_found", "rate_limited", "internal_error",
               "audit_unavailable")
POLICY_ERRORS = ("ip_not_allowed", "mfa_required", "time_window_violation")
# An unknown ``:suffix`` (404) or a known one with the wrong method (405) on ``{base}/{path}``.
BAD_SUFFIX = ("not_found", "method_not_allowed")
READ_ERRORS = ("invalid_path", "secret_not_found", "version_not_found", "decryption_failed", "kms_unavailable")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    explode: bool = False


_FLAG = {"type": "boolean", "default": False}
_FLAG_NOTE = " (`true`, `1` or `yes`)"


@dataclass(frozen=True, slots=True)
class SecretOp:
    """One secrets operation, mounted under both bases. ``suffix`` follows ``{base}/{path}`` when ``item``,
    else ``{base}``."""

    method: str
    suffix: str
    item: bool
    op_id: str                  # "{P}" becomes "" or "Partner"
    summary: str
    scope: str
    permission: str
    category: str
    ok: tuple[tuple[int, type[BaseModel] | None, str], ...]
    errors: tuple[str, ...]
    body: type[BaseModel] | None = None
    query: tuple[Param, ...] = ()
    notes: str = ""
    partner_write: bool = False  # partner base: caller must be a partner admin of that partner


SECRET_OPERATIONS: tuple[SecretOp, ...] = (
    SecretOp("get", "", True, "read{P}Secret", "Read a secret's value (latest or `?version=N`)",
             "secrets:read", "read", "read_secrets", ((200, Secret, "The secret with its data"),),
             ("validation_error", *READ_ERRORS, *BAD_SUFFIX),
             query=(Param("version", {"type": "integer", "minimum": 1}, "Read this version instead of the latest"),),
             notes="An expired current version reads as `404 secret_not_found` with `details.expired`."),
    SecretOp("get", ":metadata", True, "read{P}SecretMetadata", "Read a secret's metadata (no value)",
             "secrets:list", "list", "list_operations", ((200, SecretMetadata, "The metadata"),),
             ("invalid_path", "secret_not_found"),
             query=(Param("include_deleted", _FLAG, "Also show a soft-deleted secret" + _FLAG_NOTE),)),
    SecretOp("get", ":versions", True, "list{P}SecretVersions", "List a secret's versions",
             "secrets:list", "list", "list_operations", ((200, SecretVersions, "The version history"),),
             ("invalid_path", "secret_not_found")),
    SecretOp("put", "", True, "write{P}Secret", "Write a new version",
             "secrets:write", "write", "write_secrets",
             ((201, SecretWritten, "First version created"), (200, SecretWritten, "New version appended")),
             ("invalid_request", "invalid_path", "invalid_secret_type", "invalid_duration", "validation_error",
              "secret_exists", "version_conflict", "payload_too_large", "kms_unavailable", *BAD_SUFFIX),
             body=SecretWrite, partner_write=True,
             notes="`409 secret_exists` while the path is soft-deleted and recoverable; "
                   "`409 version_conflict` when `options.cas` does not match."),
    SecretOp("patch", "", True, "update{P}Secret", "Update metadata and options (also `PATCH {path}:metadata`)",
             "secrets:write", "write", "write_secrets", ((200, SecretMetadata, "The updated metadata"),),
             ("invalid_request", "invalid_path", "invalid_duration", "validation_error", "secret_not_found",
              "payload_too_large", *BAD_SUFFIX),
             body=SecretPatch, partner_write=True),
    SecretOp("delete", "", True, "delete{P}Secret", "Delete a secret (soft by default)",
             "secrets:delete", "delete", "delete_secrets", ((204, None, "Deleted"),),
             ("invalid_path", "secret_not_found", *BAD_SUFFIX), partner_write=True,
             query=(Param("permanent", _FLAG, "Remove the secret and every version now, also when soft-deleted"
                          + _FLAG_NOTE),),
             notes="A soft delete is recoverable with `:restore` for `SOFT_DELETE_RETENTION` (30 days)."),
    SecretOp("post", ":restore", True, "restore{P}Secret", "Undo a soft delete",
             "secrets:write", "write", "write_secrets", ((200, SecretMetadata, "The restored secret's metadata"),),
             ("invalid_path", "secret_not_found"), partner_write=True,
             notes="Idempotent on a live secret; `404` after the recovery window."),
    SecretOp("post", ":destroy", True, "destroy{P}SecretVersions", "Erase versions' ciphertext for good",
             "secrets:delete", "delete", "delete_secrets", ((200, SecretDestroyed, "The destroyed versions"),),
             ("invalid_request", "invalid_path", "validation_error", "secret_not_found", "version_not_found"),
             body=SecretDestroy, partner_write=True,
             notes="All or nothing: a missing version gives `404 version_not_found` with `details.versions`."),
    SecretOp("post", ":rotate", True, "rotate{P}Secret", "Rotate now through the secret's rotation policy",
             "secrets:rotate", "rotate", "write_secrets", ((200, RotationRequested, "The pending rotation"),),
             ("invalid_path", "secret_not_found", "conflict", "service_unavailable"),
             notes="`409 conflict` when no rotation policy is attached; see docs/rotation.md."),
    SecretOp("get", "", False, "list{P}Secrets", "List secrets (metadata only)",
             "secrets:list", "list", "list_operations", ((200, SecretList, "One page, ordered by path"),),
             ("invalid_path", "invalid_cursor", "invalid_duration", "validation_error"),
             query=(
                 Param("prefix", {"type": "string"}, "Plain string prefix of the path (`app` matches `apple`)"),
                 Param("tag", {"type": "array", "items": {"type": "string"}},
                       "Repeatable; every tag must be present", explode=True),
                 Param("limit", {"type": "integer", "minimum": 1, "maximum": LIST_MAX_LIMIT,
                                 "default": LIST_DEFAULT_LIMIT}, "Page size (a page may come back shorter)"),
                 Param("cursor", {"type": "string"}, "The `cursor` of the previous page"),
                 Param("expiring_within", {"type": "string", "examples": ["30d"]},
                       "Only secrets whose current version expires within this duration (or has expired)"),
                 Param("include_deleted", _FLAG, "Include soft-deleted secrets" + _FLAG_NOTE),
             ),
             notes="Filtered by `list` permission on each path."),
    SecretOp("post", "/batch", False, "batchRead{P}Secrets", "Read up to 100 secrets",
             "secrets:read", "read", "batch_read", ((200, BatchReadResult, "Values, and per-path errors"),),
             ("invalid_request", "validation_error", *READ_ERRORS),
             body=BatchRead,
             notes="Each path is checked for `read` on its own; failures go to `errors[path]` unless "
                   "`fail_fast`. Charges 1 `batch_read` plus 1 `read_secrets` per secret returned."),
    SecretOp("post", "/batch/metadata", False, "batchRead{P}SecretMetadata", "Read the metadata of many secrets",
             "secrets:list", "list", "batch_metadata", ((200, BatchMetadataResult, "Metadata, and per-path errors"),),
             ("invalid_request", "validation_error"), body=BatchMetadata,
             notes="Paths the caller may not `list` appear in `errors` as `access_denied`."),
)

BASES: tuple[tuple[str, bool], ...] = (("/v1/secrets", False), ("/v1/partner/secrets", True))
_PATH_PARAM = {
    "name": "path", "in": "path", "required": True,
    "description": "Secret path; may contain `/` (e.g. `environments/production/db/password`)",
    "schema": {"type": "string", "pattern": r"^[a-z0-9_\-]+(/[a-z0-9_\-]+)*$", "maxLength": inp.MAX_PATH_CHARS},
}


def _model_schemas() -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorEnvelope, "serialization")]
    for op in SECRET_OPERATIONS:
        if op.body is not None:
            pairs.append((op.body, "validation"))
        pairs += [(model, "serialization") for _, model, _ in op.ok if model is not None]
    _, top = models_json_schema(list(dict.fromkeys(pairs)), ref_template=REF)
    return dict(top.get("$defs", {}))


def _json_ref(name: str) -> dict[str, Any]:
    return {JSON_MEDIA: {"schema": {"$ref": REF.format(model=name)}}}


def _error_responses(codes: Iterable[str]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(status_for(code), []).append(code)
    return {str(status): {"description": "Error envelope; `error.code` is one of: "
                          + ", ".join(f"`{c}`" for c in by_status[status]),
                          "content": _json_ref("ErrorEnvelope")}
            for status in sorted(by_status)}


def _operation(op: SecretOp, partner: bool) -> dict[str, Any]:
    codes = list(op.errors) + list(AUTH_ERRORS)
    if op.permission != "list" or op.item:  # a list or batch-metadata filters paths instead of refusing
        codes += POLICY_ERRORS
    notes = [f"Scope `{op.scope}`; policy permission `{op.permission}`; rate-limit category `{op.category}`."]
    if partner:
        codes.append("forbidden")
        notes.append("Partner-wide secret of the effective tenant's partner (`403 forbidden` for a tenant without "
                     "a partner)." + (" Only a partner admin of that partner (or a super admin) may call this."
                                      if op.partner_write else ""))
    if op.notes:
        notes.append(op.notes)
    responses: dict[str, Any] = {}
    for status, model, description in op.ok:
        resp: dict[str, Any] = {"description": description}
        if model is not None:
            resp["content"] = _json_ref(model.__name__)
        responses[str(status)] = resp
    responses.update(_error_responses(codes))
    params: list[dict[str, Any]] = [dict(_PATH_PARAM)] if op.item else []
    for p in op.query:
        param: dict[str, Any] = {"name": p.name, "in": "query", "required": False, "description": p.description,
                                 "schema": dict(p.schema)}
        if p.explode:
            param.update(style="form", explode=True)
        params.append(param)
    out: dict[str, Any] = {
        "tags": ["partner-secrets" if partner else "secrets"],
        "summary": op.summary,
        "description": " ".join(notes),
        "operationId": op.op_id.replace("{P}", "Partner" if partner else ""),
        "security": [{BEARER: [op.scope]}],
        "responses": responses,
    }
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _json_ref(op.body.__name__)}
    return out


def secret_paths() -> dict[str, dict[str, Any]]:
    """The hand-maintained ``paths`` entries of the secrets routes (both bases)."""
    paths: dict[str, dict[str, Any]] = {}
    for base, partner in BASES:
        for op in SECRET_OPERATIONS:
            key = f"{base}/{{path}}{op.suffix}" if op.item else f"{base}{op.suffix}"
            paths.setdefault(key, {})[op.method] = _operation(op, partner)
    return paths


# ---------------------------------------------------------------------------------------------- assembly

_GENERIC_ERRORS = {
    "401": "Not authenticated (`authentication_required`, `token_invalid`, `token_expired`, `token_revoked`)",
    "403": "Refused (`insufficient_scope`, `access_denied`, `forbidden`, ...)",
    "429": "Rate limited (`rate_limited`; see `Retry-After`)",
}


def auth_requirement(route: Any) -> list[str] | None:
    """What an ``APIRoute`` needs, read from its ``api.deps.authorized`` dependency: None (no bearer token),
    [] (any valid token) or [scope]."""
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while stack:
        dep = stack.pop()
        call = dep.call
        if getattr(call, "__name__", "").startswith("authorized_"):
            scope = inspect.getclosurevars(call).nonlocals.get("scope")
            return [scope] if scope else []
        stack += dep.dependencies
    return None


def _route_requirements(app: FastAPI) -> dict[tuple[str, str], list[str] | None]:
    out: dict[tuple[str, str], list[str] | None] = {}
    for rc in iter_route_contexts(app.routes):
        if isinstance(rc.original_route, APIRoute) and rc.path_format:
            for method in rc.methods or ():
                out[(method.lower(), rc.path_format)] = auth_requirement(rc.original_route)
    return out


# What FastAPI cannot see in a handler: a response that is not JSON, errors a public operation raises.
_TEXT_PLAIN = {"text/plain": {"schema": {"type": "string"}}}
RESPONSE_FIXES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/v1/metrics"): {"200": {"description": "Prometheus metrics, text exposition format 0.0.4",
                                     "content": _TEXT_PLAIN}},
}
PUBLIC_ERRORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/v1/identity/webhooks/scaikey"): ("invalid_request", "invalid_signature", "payload_too_large",
                                                "webhook_secret_not_configured"),
}


def _fix_generated(paths: dict[str, Any], requirements: dict[tuple[str, str], list[str] | None]) -> None:
    """Make FastAPI's operations true to the app: envelope errors, bearer security (with the scope) where needed."""
    for path, item in paths.items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            responses.update(copy.deepcopy(RESPONSE_FIXES.get((method, path), {})))
            responses.update(_error_responses(PUBLIC_ERRORS.get((method, path), ())))
            if "422" in responses:
                responses["422"] = {"description": "Validation error (`validation_error`, `details.fields`)",
                                    "content": _json_ref("ErrorEnvelope")}
            if (method, path) in PUBLIC_OPERATIONS:
                op["security"] = []
                continue
            op["security"] = [{BEARER: requirements.get((method, path)) or []}]
            for status, text in _GENERIC_ERRORS.items():
                responses.setdefault(status, {"description": text, "content": _json_ref("ErrorEnvelope")})
            responses.setdefault("default", {"description": "Any other error, as an error envelope",
                                             "content": _json_ref("ErrorEnvelope")})


def _document_url_guard(path: str, responses: dict[str, Any]) -> None:
    """``api/middleware.py hostile_url`` answers before any route: a control character in a query name or value is
    ``422 validation_error`` (on every operation, since any query string can carry one), in the URL path ``400
    invalid_path`` (on operations with path parameters; a literal path with one matches no route)."""
    responses.setdefault("422", {"description": "Validation error (`validation_error`, `details.fields`)",
                                 "content": _json_ref("ErrorEnvelope")})
    if "{" not in path:
        return
    bad = responses.setdefault("400", {"description": "Error envelope; `error.code` is one of: `invalid_path`",
                                       "content": _json_ref("ErrorEnvelope")})
    if "invalid_path" not in bad.get("description", ""):
        bad["description"] = bad.get("description", "Error envelope") + \
            " (`invalid_path`: a control character in the URL path)"
    bad.setdefault("content", _json_ref("ErrorEnvelope"))


def _unused(schemas: dict[str, Any], doc: dict[str, Any], names: Iterable[str]) -> list[str]:
    text = json.dumps({"paths": doc.get("paths", {}),
                       "schemas": {k: v for k, v in schemas.items() if k not in names}})
    return [n for n in names if REF.format(model=n) not in text]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The full document (uncached)."""
    doc = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                      description=(app.description or "") + API_DESCRIPTION, routes=app.routes,
                      servers=app.servers)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    _fix_generated(paths, _route_requirements(app))
    for key, ops in secret_paths().items():
        clash = set(ops) & set(paths.get(key, {}))
        if clash:
            raise ValueError(f"{sorted(clash)} {key} is documented twice; drop its entry in api/openapi.py")
        paths.setdefault(key, {}).update(copy.deepcopy(ops))
    for key, item in paths.items():
        for op in item.values():
            _document_url_guard(key, op.setdefault("responses", {}))
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    for name, schema in _model_schemas().items():
        if name in schemas:
            raise ValueError(f"schema name {name!r} is used by a FastAPI model and by api/openapi.py")
        schemas[name] = schema
    from api.schemas.bodies import apply_request_bodies  # typed bodies of routes that parse JSON themselves

    apply_request_bodies(paths, schemas)
    for name in _unused(schemas, doc, ("HTTPValidationError", "ValidationError")):
        schemas.pop(name, None)
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "A ScaiKey JWT or a ScaiVault personal access token (`skt_...`). Secrets operations list "
                       "the scope they need.",
    }
    doc["tags"] = [*doc.get("tags", []),
                   {"name": "secrets", "description": "Tenant secrets (docs/secrets.md)"},
                   {"name": "partner-secrets", "description": "Secrets shared by every tenant of a partner"}]
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_openapi(app)`` at ``app.openapi_url``, built once on first use."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
