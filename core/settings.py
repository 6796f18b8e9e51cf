"""The one Settings class. Every tunable comes from the environment (see README "Configuration").

Secrets are ``SecretStr`` so they never print. Outside ``ENV=dev`` a missing or placeholder secret
refuses to start with a message that names the variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "changeme", "changethis", "change-me", "placeholder", "secret", "xxx", "todo"}

# Dev-only fallbacks. They are public knowledge, which is why ENV=test/prod refuses them.
_DEV_DEFAULTS: dict[str, str] = {
    "token_hmac_key": "dev-insecure-token-hmac-key-0000000000000000",
    "audit_hmac_key": "dev-insecure-audit-hmac-key-0000000000000000",
    "temporal_codec_key": "dev-insecure-temporal-codec-key-000000000000",
    "scaikey_client_secret": "dev-insecure-client-secret",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    env: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    # One JSON line per request (method, route, status, duration, request_id). Default: on in dev, off otherwise
    # (it costs ~10% of read throughput; every authenticated request's request_id is in the audit log anyway).
    log_access: bool | None = None
    version: str = "0.1.0"
    base_url: str = "http://127.0.0.1:8200"

    # --- PostgreSQL -------------------------------------------------------------------------
    database_url: str = "postgresql://postgres@127.0.0.1:5432/scaivault"
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=300)  # then 503 service_unavailable
    db_statement_timeout_ms: int = 15000
    migrate_on_start: bool = True

    # --- Redis --------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = 0.5
    # Circuit breaker around request-path Redis calls (core/breaker.py): opens after this many consecutive
    # failures or timeouts, then a background PING every probe interval closes it once Redis answers.
    redis_breaker_failure_threshold: int = Field(default=3, ge=1, le=1000)
    redis_breaker_probe_interval_seconds: float = Field(default=1.0, gt=0, le=60)

    # --- Temporal -----------------------------------------------------------------------------
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue_prefix: str = ""  # lets parallel test runs share one Temporal server
    temporal_codec_key: SecretStr = SecretStr("")
    temporal_codec_previous_keys: SecretStr = SecretStr("")  # comma-separated; still decode old histories
    temporal_tls: bool = False
    temporal_tls_ca_file: str = ""
    temporal_tls_cert_file: str = ""  # client certificate for mTLS
    temporal_tls_key_file: str = ""
    temporal_api_key: SecretStr = SecretStr("")
    # Deadline for each call the API makes to start, signal or query a workflow (worker/client.with_deadline);
    # past it the request answers 503 service_unavailable naming Temporal.
    temporal_rpc_timeout_seconds: float = Field(default=4.0, gt=0, le=60)
    # host:port of the worker's own Prometheus /metrics (worker_scheduler_*, queue depths); empty = off, because
    # several workers per host (one per task queue) would collide on a fixed default port (docs/operations.md).
    worker_metrics_bind_address: str = ""
    # Workflow starts carry the ScaiVaultTenant/ScaiVaultArea/ScaiVaultResourceId search attributes (worker/visibility.py);
    # false for a namespace where they cannot be registered (memos still carry the summary).
    temporal_search_attributes: bool = True
    # A workflow task waits this long on the sticky queue of the worker that ran it last before any worker may take
    # it (SDK default 10 s): after a worker crash, timers (lease expiry, rotation) fire this much late at most.
    temporal_sticky_queue_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    housekeeping_interval_seconds: int = 300
    housekeeping_batch_size: int = 500
    housekeeping_batch_pause_ms: int = 0
    event_retention_days: int = 7

    # --- KMS / key hierarchy ------------------------------------------------------------------
    kms_provider: Literal["local", "aws"] = "local"
    kms_local_key_file: str = ""
    kms_local_key: SecretStr = SecretStr("")  # base64 32 bytes; takes precedence over the file
    kms_key_id: str = ""  # aws: key id or ARN
    aws_region: str = "us-east-1"
    aws_endpoint_url: str = ""  # moto_server in tests
    key_cache_ttl_seconds: int = 300

    # --- ScaiKey ------------------------------------------------------------------------------
    scaikey_base_url: str = Field(
        default="http://127.0.0.1:8900", validation_alias=AliasChoices("scaikey_base_url", "scaikey_url")
    )
    scaikey_jwks_url: str = ""
    scaikey_client_id: str = "scaivault"
    scaikey_client_secret: SecretStr = SecretStr("")
    scaikey_audience: str = ""  # defaults to the client id
    scaikey_issuer_prefix: str = ""  # defaults to the base URL; tokens are issued by {base}/tenants/{id}
    scaikey_webhook_secret: SecretStr = SecretStr("")  # unset: the webhook receiver answers 503
    jwt_algorithms: str = "RS256,ES256"
    jwt_leeway_seconds: int = 60
    jwks_cache_ttl_seconds: int = 600
    jwks_min_refresh_interval_seconds: int = 30
    token_revocation_check_seconds: int = 60
    # Introspection answering 4xx (bad client credentials): "closed" refuses tokens (503), "open" accepts
    # locally verified ones. Unset: closed, except ENV=dev (docs/auth.md "Revocation checks").
    token_introspection_failure_mode: Literal["closed", "open"] | None = None
    bootstrap_super_admin: str = ""  # user:usr_<id> (any tenant), or user:<email> (only in OPERATOR_TENANT_ID)
    super_admin_groups: str = ""  # ScaiKey group ids (any tenant), or group names (only in OPERATOR_TENANT_ID)
    operator_tenant_id: str = ""  # the platform operator's ScaiKey tenant (docs/identity.md "Super admins")
    # The identity-sync Schedule sweeps every tenant this often (worker/schedules.py); fractions allowed (tests).
    identity_sync_interval_minutes: float = Field(default=60, gt=0)
    # Sync requests stored while Temporal was unavailable are re-dispatched within about this many seconds.
    identity_sync_requeue_seconds: int = Field(default=60, ge=1, le=3600)
    # Sweep at once when the worker first creates the identity-sync Schedule (a fresh deployment syncs every
    # tenant right away instead of at the first interval). None: on, except ENV=test (tests opt in).
    identity_sync_initial_sweep: bool | None = None
    # Identity sync (docs/identity.md "Credentials"): optional separate credentials for the sync. Unset: the
    # sync uses SCAIKEY_CLIENT_ID/SECRET. A TENANT-scoped app needs SCAIKEY_SYNC_TENANT_SLUG (its token
    # endpoint is /api/v1/auth/tenants/{slug}/oauth/token); without a slug the platform endpoint is used.
    scaikey_sync_client_id: str = ""
    scaikey_sync_client_secret: SecretStr = SecretStr("")
    scaikey_sync_tenant_slug: str = ""
    scaikey_application_id: str = "me"  # app whose effective users are mirrored; "me" = the sync credentials' app
    scaikey_page_size: int = Field(default=100, ge=0, le=1000)  # per_page sent to ScaiKey; 0 = server default
    scaikey_sync_concurrency: int = Field(default=8, ge=1, le=64)  # parallel member-list calls per sync
    identity_sync_heartbeat_seconds: int = 30
    identity_sync_retry_attempts: int = 5
    identity_cache_ttl_seconds: float = 15.0  # per-process principal enrichment cache (roles, groups, status)

    # --- tokens, audit, limits ----------------------------------------------------------------
    token_hmac_key: SecretStr = SecretStr("")
    pat_default_ttl_days: int = 90
    audit_hmac_key: SecretStr = SecretStr("")
    audit_retention_days: int = 2555
    audit_write_timeout_seconds: float = 5.0  # a request waits at most this long for its entry, then 503
    audit_batch_max: int = Field(default=1000, ge=1, le=10000)  # entries per group commit
    audit_seal_interval_seconds: float = 2.0  # hash-chain sealing pass in each API process; 0 disables
    audit_seal_in_api: bool = False  # the worker seals; set true to also seal from API processes
    soft_delete_retention: str = "30d"
    rate_limit_enabled: bool = True
    rate_limit_overrides: str = ""  # "read_secrets=2000,write_secrets=200"
    rate_limit_tenant_cache_seconds: float = 30.0  # per-tenant overrides are cached this long per process
    trusted_proxies: str = ""  # CIDRs whose X-Forwarded-For is believed
    # Highest per-minute limit a tenant override may hold (PUT /v1/admin/rate-limits); raising a limit above the
    # defaults at all needs a super admin or the tenant's partner admin. Stored overrides are clamped to it too.
    rate_limit_tenant_ceiling: int = Field(default=100_000, ge=1, le=2**31 - 1)
    # Public /v1/health, /v1/health/ready, /v1/version, /v1/metrics: requests per minute per client address
    # (in-process buckets, no Redis); 0 disables. Readiness results are shared for health_cache_seconds.
    health_rate_limit_per_minute: int = Field(default=600, ge=0, le=1_000_000)
    health_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # Request-body caps (api/body_limit.py): 413 payload_too_large before the body is read.
    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)  # every route without its own cap
    max_secret_body_bytes: int = Field(default=524_288, ge=1024)  # secret writes and batches

    # --- access policies (docs/policies.md "Index cache") -------------------------------------
    policy_cache_recheck_seconds: float = Field(default=1.0, gt=0)  # version re-check per tenant per process
    policy_cache_fallback_ttl_seconds: float = Field(default=5.0, gt=0)  # trust an index this long, Redis down
    policy_cache_max_age_seconds: float = Field(default=60.0, gt=0)  # rebuild at least this often, always
    policy_violation_events_per_minute: int = Field(default=60, ge=0)  # per tenant per process; rest counted

    # --- webhooks -----------------------------------------------------------------------------
    webhook_allow_private: bool | None = None  # None: allowed in dev only
    webhook_timeout_seconds: float = 10.0
    # Delays before retry 1, 2, ...; after the last one fails the delivery is dead-lettered (status failed).
    # Units ms|s|m|h|d (tests use e.g. "200ms,200ms,200ms").
    webhook_retry_schedule: str = "1m,5m,30m,2h,12h,24h"
    webhook_response_body_limit: int = 1024  # bytes of a receiver's response kept in the delivery log
    webhook_degraded_after: int = 3  # consecutive failed attempts -> status degraded
    webhook_failing_after: int = 10  # consecutive failed attempts (or a dead letter) -> status failing
    # Key for webhook signing secrets at rest (base64 32 bytes); empty: derived from TOKEN_HMAC_KEY via HKDF.
    webhook_secret_key: SecretStr = SecretStr("")
    event_relay_batch_size: int = 200
    secrets_write_batch_max: int = Field(default=128, ge=0, le=4096)  # group commit of secret writes per process; 0: one transaction each
    event_relay_coalesce_ms: int = Field(default=20, ge=0, le=1000)  # after a commit notification, gather more
    event_relay_sweep_seconds: float = 5.0  # the relay re-scans the outbox at least this often
    event_relay_run_seconds: int = 300  # one relay activity runs this long, then the workflow loops
    event_relay_heartbeat_seconds: int = 30
    subscription_poll_recheck_seconds: float = 2.0  # a long-poll re-reads the buffer this often (Redis down)

    # --- rotation and expiry (docs/rotation.md) -------------------------------------------------------
    rotation_failure_backoff_seconds: int = Field(default=300, ge=1)  # first retry after a failed rotation; x2
    expiry_notify_before: str = "30d,7d,1d"  # default secret.expiring thresholds (a secret's notify_before wins)
    # Tests only (crash test): the rotation activity waits this long after its version write committed. Keep 0.
    rotation_crash_test_pause_seconds: float = Field(default=0.0, ge=0)

    # --- ACME and managed certificates (docs/acme.md) -------------------------------------------------
    acme_ca_bundle: str = ""  # CA file trusted for ACME directories (a private CA, Pebble); empty: system trust
    acme_retry_base_seconds: float = Field(default=60.0, gt=0)  # first retry after a failed order attempt; x2
    acme_retry_max_seconds: float = Field(default=3600.0, gt=0)  # backoff cap (a CA's Retry-After may exceed it)
    acme_order_max_tries: int = Field(default=3, ge=1)  # failed attempts before an order is abandoned for a fresh one
    acme_heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)  # the order activity's heartbeat timeout
    acme_dns_propagation_timeout_seconds: float = Field(default=120.0, gt=0)  # wait for a dns-01 TXT to be served
    acme_finalize_timeout_seconds: float = Field(default=120.0, gt=0)  # wait for the CA to validate and issue
    # Tests only (crash test): the order activity waits this long after publishing its challenges. Keep 0.
    acme_crash_test_pause_seconds: float = Field(default=0.0, ge=0)

    # --- federation (docs/federation.md) ---------------------------------------------------------------
    federation_remote_timeout_seconds: float = Field(default=5.0, gt=0)  # every call to a federated backend
    federation_min_sync_interval_seconds: int = Field(default=60, ge=1)  # floor for a backend's sync_interval
    federation_sync_page_size: int = Field(default=100, ge=1, le=1000)  # keys per heartbeat (resume granularity)
    federation_sync_heartbeat_seconds: int = Field(default=30, ge=1)  # heartbeat timeout of the sync activity
    federation_backoff_seconds: int = Field(default=30, ge=1)  # reported retry-after of a failed sync
    federation_proxy_concurrency: int = Field(default=8, ge=1, le=256)  # in-flight proxied reads per backend
    federation_index_ttl_seconds: float = Field(default=5.0, gt=0)  # per-process mapping index freshness bound
    federation_proxy_cache_seconds: float = Field(default=0.0, ge=0, le=300)  # read-through cache; 0 = off
    # Tests only (crash test): the sync activity sleeps this long after each page. Keep 0.
    federation_crash_test_page_pause_seconds: float = Field(default=0.0, ge=0)

    # --- dynamic credentials (docs/dynamic.md) -----------------------------------------------------------
    dynamic_connect_timeout_seconds: float = Field(default=5.0, gt=0)  # test connection / target connect
    dynamic_target_pool_size: int = Field(default=8, ge=1)  # API connections per engine per process (issuing)
    dynamic_root_credentials_cache_seconds: float = Field(default=30.0, ge=0)  # root secret re-read interval
    dynamic_health_cache_seconds: float = Field(default=30.0, ge=0)  # GET engine re-checks older results
    dynamic_aws_wait_seconds: float = Field(default=30.0, gt=0)  # wait_until_usable deadline for new AWS keys
    # Revocation, per engine: rate (leases/s; an engine's config.revocation_rate_per_second wins), connections,
    # statements per transaction, failures before revocation_failed, retry backoff (doubles up to the max).
    dynamic_revocation_rate_per_second: float = Field(default=500.0, gt=0)
    dynamic_revocation_concurrency: int = Field(default=4, ge=1, le=64)
    dynamic_revocation_batch_size: int = Field(default=25, ge=1, le=1000)
    dynamic_revocation_max_attempts: int = Field(default=5, ge=1)
    dynamic_revocation_backoff_seconds: float = Field(default=2.0, gt=0)
    dynamic_revocation_backoff_max_seconds: float = Field(default=300.0, gt=0)
    dynamic_revoker_idle_seconds: int = Field(default=300, ge=1)  # a revoker re-reads PostgreSQL at least this often
    dynamic_revoker_run_seconds: float = Field(default=60.0, gt=0)  # one revoke_due activity pass at most
    dynamic_reconcile_seconds: int = Field(default=60, ge=1)  # lease-reconcile Schedule: restart stalled revokers

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        required = ["token_hmac_key", "audit_hmac_key", "temporal_codec_key", "scaikey_client_secret"]
        for name in required:
            value: SecretStr = getattr(self, name)
            if value.get_secret_value().strip().lower() in PLACEHOLDERS:
                if self.env == "dev":
                    object.__setattr__(self, name, SecretStr(_DEV_DEFAULTS[name]))
                else:
                    raise ValueError(
                        f"{name.upper()} is missing or a placeholder; set it to a strong random value "
                        f"(ENV={self.env} refuses to start without it)"
                    )
            elif self.env != "dev" and value.get_secret_value().startswith("dev-insecure-"):
                raise ValueError(f"{name.upper()} uses the public dev default; ENV={self.env} refuses it")
        if self.env == "prod" and self.kms_provider == "local" and not (
            self.kms_local_key.get_secret_value() or self.kms_local_key_file
        ):
            raise ValueError("KMS_LOCAL_KEY or KMS_LOCAL_KEY_FILE must be set explicitly when ENV=prod")
        if self.kms_provider == "aws" and not self.kms_key_id:
            raise ValueError("KMS_KEY_ID is required when KMS_PROVIDER=aws")
        return self

    # --- derived ------------------------------------------------------------------------------
    @property
    def asyncpg_dsn(self) -> str:
        return _strip_driver(self.database_url)

    @property
    def sqlalchemy_url(self) -> str:
        """asyncpg URL without libpq-only query options (``sslmode`` travels as ``db_ssl_mode``)."""
        rest = _strip_driver(self.database_url).split("://", 1)[1]
        base, _, query = rest.partition("?")
        kept = [kv for kv in query.split("&") if kv and not kv.startswith(("sslmode=", "sslrootcert="))]
        return "postgresql+asyncpg://" + base + ("?" + "&".join(kept) if kept else "")

    @property
    def db_ssl_mode(self) -> str | None:
        """``sslmode`` from DATABASE_URL (libpq spelling), which psycopg reads from the URL itself."""
        query = self.database_url.partition("?")[2]
        for kv in query.split("&"):
            if kv.startswith("sslmode="):
                return kv.split("=", 1)[1]
        return None

    @property
    def psycopg_url(self) -> str:
        return "postgresql+psycopg://" + _strip_driver(self.database_url).split("://", 1)[1]

    @property
    def access_log_enabled(self) -> bool:
        return self.env == "dev" if self.log_access is None else self.log_access

    @property
    def identity_sync_sweep_on_create(self) -> bool:
        return self.env != "test" if self.identity_sync_initial_sweep is None else self.identity_sync_initial_sweep

    @property
    def audience(self) -> str:
        return self.scaikey_audience or self.scaikey_client_id

    @property
    def issuer_prefix(self) -> str:
        return (self.scaikey_issuer_prefix or self.scaikey_base_url).rstrip("/")

    @property
    def allowed_jwt_algorithms(self) -> list[str]:
        algs = [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]
        return [a for a in algs if a in {"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}]

    def task_queue(self, concern: str) -> str:
        return f"{self.temporal_task_queue_prefix}{concern}"

    @property
    def introspection_fail_closed(self) -> bool:
        mode = self.token_introspection_failure_mode
        return self.env != "dev" if mode is None else mode == "closed"

    @property
    def allow_private_webhooks(self) -> bool:
        return self.env == "dev" if self.webhook_allow_private is None else self.webhook_allow_private


def _strip_driver(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
