"""Prometheus series (spec core.md §12.3). Multiprocess-aware when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("scaivault_requests_total", "HTTP requests", ["method", "route", "path_category", "status"])
REQUEST_DURATION = Histogram(
    "scaivault_request_duration_seconds", "HTTP request latency", ["method", "route", "path_category"],
    buckets=_BUCKETS,
)
ACTIVE_REQUESTS = Gauge("scaivault_active_requests", "In-flight requests", ["path_category"],
                        multiprocess_mode="livesum")
RATE_LIMIT_HITS = Counter("scaivault_rate_limit_hits_total", "Requests rejected with 429", ["category"])
AUDIT_WRITE_LATENCY = Histogram("scaivault_audit_write_seconds", "Audit batch commit latency", buckets=_BUCKETS)
AUDIT_BATCH_SIZE = Histogram("scaivault_audit_batch_size", "Entries per audit group commit",
                             buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500))
SECRET_READS = Counter("scaivault_secret_reads_total", "Secret reads", ["tenant", "secret_type"])
SECRET_WRITES = Counter("scaivault_secret_writes_total", "Secret writes", ["tenant"])
KMS_LATENCY = Histogram("scaivault_kms_latency_seconds", "KMS call latency", ["operation"], buckets=_BUCKETS)
CACHE_EVENTS = Counter("scaivault_cache_events_total", "Cache hits and misses", ["cache", "result"])
DB_POOL_SIZE = Gauge("scaivault_db_pool_size", "DB pool size", multiprocess_mode="max")
DB_POOL_AVAILABLE = Gauge("scaivault_db_pool_available", "Idle DB connections", multiprocess_mode="livesum")
CIRCUIT_BREAKER_OPEN = Gauge("scaivault_circuit_breaker_open", "1 while a dependency's circuit breaker is open",
                             ["name"], multiprocess_mode="livemax")
CIRCUIT_BREAKER_CALLS = Counter("scaivault_circuit_breaker_calls_total",
                                "Calls through a circuit breaker (success, failure, short_circuited)",
                                ["name", "result"])

# Rotation (lifecycle.md §1.5): set from PostgreSQL at scrape time (services/rotation/metrics.py), because the
# rotations happen in worker processes.
SECRET_ROTATIONS = Gauge("scaivault_secret_rotations_total", "Rotations recorded in rotation history, by status",
                         ["status"], multiprocess_mode="max")
ROTATION_QUEUE_DEPTH = Gauge("scaivault_rotation_queue_depth", "Attached secrets due, overdue or failed",
                             multiprocess_mode="max")

# Background jobs (issue 20; docs/operations.md "Metrics"). Every Temporal activity run, by activity type
# (housekeeping steps as housekeeping.run_step:<step>) and outcome (success, failure, cancelled): recorded by
# worker/interceptors.py MetricsInterceptor in the worker process, exposed on its WORKER_METRICS_PORT.
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
WORKER_RUNS = Counter("worker_scheduler_runs_total", "Background job runs (Temporal activities)",
                      ["task", "outcome"])
WORKER_RUN_DURATION = Histogram("worker_scheduler_run_duration_seconds", "Background job run duration", ["task"],
                                buckets=_JOB_BUCKETS)
# Queue depths read from PostgreSQL at scrape time (services/job_metrics.py; areas register their own).
QUEUE_DEPTH = Gauge("scaivault_queue_depth", "Work waiting, by queue (outbox_backlog, webhook_deliveries_pending, "
                    "...)", ["queue"], multiprocess_mode="max")
OUTBOX_OLDEST_AGE = Gauge("scaivault_outbox_oldest_age_seconds", "Age of the oldest undispatched outbox event",
                          multiprocess_mode="max")
WEBHOOK_QUEUE_DEPTH = Gauge("scaivault_webhook_queue_depth", "Webhook deliveries pending", multiprocess_mode="max")
DB_LATENCY = Histogram("scaivault_db_latency_seconds", "PostgreSQL round trip (probe at each scrape)",
                       buckets=_BUCKETS)
REDIS_LATENCY = Histogram("scaivault_redis_latency_seconds", "Redis round trip (probe at each scrape)",
                          buckets=_BUCKETS)
JWKS_REFRESHES = Counter("scaivault_jwks_refreshes_total", "JWKS fetches from ScaiKey, by result (ok, error)",
                         ["result"])
AUDIT_WRITE_FAILURES = Counter("scaivault_audit_write_failures_total",
                               "Audit writes that did not commit (the request failed closed: 503 audit_unavailable)")
IDENTITY_SYNC_AGE = Gauge("scaivault_identity_sync_age_seconds",
                          "Age of the stalest tenant's last successful identity sync", multiprocess_mode="max")

# Dynamic credentials (lifecycle.md §4.2, §4.4): leases active and engine health are set from PostgreSQL at scrape
# time (services/dynamic/metrics.py); generated credentials are counted where they are issued.
LEASES_ACTIVE = Gauge("scaivault_leases_active", "Leases not yet revoked, per engine", ["engine"],
                      multiprocess_mode="max")
LEASES_GENERATED = Counter("scaivault_leases_generated_total", "Dynamic credentials issued", ["engine", "role"])
ENGINE_HEALTH = Gauge("scaivault_engine_health", "1 when the engine's target answered its last check, else 0",
                      ["engine"], multiprocess_mode="max")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
