"""Shared pytest fixtures; the implementations live in tests/fixtures/.

Servers: ``services`` (session: PostgreSQL, Redis, Temporal on free loopback ports, or existing ones via
SCAIVAULT_TEST_DATABASE_URL / SCAIVAULT_TEST_REDIS_URL / SCAIVAULT_TEST_TEMPORAL_ADDRESS), ``moto``,
``scaikey``. Databases: ``template_db`` (session, migrated once), ``db_url`` (a fresh clone per test),
``redis_clean``. App: ``settings_factory``, ``settings``, ``use_settings``, ``make_app_client``,
``app_client``, ``api_server_factory``, ``api_server``, ``worker_process``.
"""

from tests.fixtures.app import (
    api_server,
    api_server_factory,
    app_client,
    make_app_client,
    settings,
    settings_factory,
    use_settings,
    worker_process,
)
from tests.fixtures.scaikey import scaikey, scaikey_client_secret
from tests.fixtures.services import (
    db_url,
    moto,
    redis_clean,
    services,
    stack_tmp_dir,
    template_db,
)
from tests.skip_policy import pytest_configure  # CI: an unexpected skip fails the run (tests/skip_allowlist)

__all__ = [
    "api_server",
    "api_server_factory",
    "app_client",
    "db_url",
    "make_app_client",
    "moto",
    "pytest_configure",
    "redis_clean",
    "scaikey",
    "scaikey_client_secret",
    "services",
    "settings",
    "settings_factory",
    "stack_tmp_dir",
    "template_db",
    "use_settings",
    "worker_process",
]
