"""Application factory. ``uvicorn api.app:create_app --factory``.

The lifespan builds the pool, Redis, the Temporal client and every component once, after the schema gate
(db.migrate.ensure_schema) has passed. Components are attached by the ``COMPONENTS`` set-up functions, routers
by ``ROUTERS``; a feature adds one line to each.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI

from api.body_limit import BodyLimitMiddleware
from api.body_limit import rules as body_limit_rules
from api.errors import install_error_handlers
from api.middleware import RequestContextMiddleware
from api.openapi import install_openapi
from api.responses import JSON
from api.state import AppState
from core import tracing
from core.logging import configure_logging
from core.settings import Settings, get_settings
from db.engine import Database
from db.migrate import ensure_schema

log = logging.getLogger("scaivault.api")

# Modules exposing ``router``. Order only matters for overlapping paths (more specific first).
ROUTERS: list[str] = [
    "api.routers.secrets",  # first: FastAPI tries routes in order, and the secret read is the hot path
    "api.routers.health",
    "api.routers.auth",
    "api.routers.audit",
    "api.routers.rate_limits",
    "api.routers.policies",
    "api.routers.secret_policies",
    "api.routers.rotation_policies",
    "api.routers.identity",
    "api.routers.webhooks",
    "api.routers.subscriptions",
    "api.routers.pki_cas",
    "api.routers.pki_roles",
    "api.routers.pki_issue",
    "api.routers.pki_certificates",
    "api.routers.pki_csr",
    "api.routers.pki_trust_anchors",
    "api.routers.pki_acme_accounts",
    "api.routers.pki_acme_orders",
    "api.routers.dns_providers",
    "api.routers.acme_challenge",
    "api.routers.federation_backends",
    "api.routers.dynamic_engines",
    "api.routers.dynamic_roles",
    "api.routers.dynamic_leases",
]

# "module:function" set-up hooks: async def setup(state: AppState) -> Callable[[], Awaitable[None]] | None
COMPONENTS: list[str] = [
    "api.components:setup_core",
    "api.components:setup_auth",
    "services.keys:setup_keyring",
    "audit.setup:setup",
    "ratelimit.setup:setup",
    "api.policy_setup:setup_policies",  # after setup_core: replaces the AllowAll placeholder (default deny)
    "api.identity_setup:setup_identity",
    "services.secrets.service:setup_secrets",
    "services.rotation.rotate:setup_rotation",
    "services.federation.proxy:setup_federation",
    "api.events_setup:setup",
]

Teardown = Callable[[], Awaitable[None]]


def _resolve(spec: str) -> Callable[[AppState], Awaitable[Teardown | None]]:
    module, _, fn = spec.partition(":")
    return getattr(importlib.import_module(module), fn)  # type: ignore[no-any-return]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    tracing.configure_from_env("scaivault-api")  # OTEL_* variables; off by default (core/tracing.py)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(ensure_schema, settings.database_url, settings.migrate_on_start)
        db = Database(settings)
        redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds, retry_on_timeout=False,
        )
        state = AppState(settings=settings, db=db, redis=redis)
        app.state.sv = state
        teardowns: list[Teardown] = []
        try:
            for spec in COMPONENTS:
                td = await _resolve(spec)(state)
                if td is not None:
                    teardowns.append(td)
            # Start-up objects live for the process: move them out of the GC's view, and collect young
            # objects less eagerly (fewer pauses in the tail latency of the request path).
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            yield
        finally:
            for td in reversed(teardowns):
                try:
                    await td()
                except Exception:
                    log.exception("teardown failed")
            await redis.aclose()
            await db.dispose()

    app = _App(
        title="ScaiVault",
        version=settings.version,
        description="Multi-tenant secrets and certificate platform. All errors use the envelope "
        '`{"error": {"code", "message", "details", "request_id"}}`.',
        lifespan=lifespan,
        default_response_class=JSON,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    install_error_handlers(app)
    # Request hooks a component may provide (state.components "on_error" / "before_response", e.g. audit).
    app.state.on_error = _on_error
    app.state.before_response = _before_response
    modules = [importlib.import_module(name) for name in ROUTERS]
    fast_routes = [route for m in modules for route in getattr(m, "FAST_ROUTES", ())]
    # Added first = inner: the body caps run inside the request context (request id, metrics, audit hook).
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.max_request_body_bytes,
                       rules=body_limit_rules(settings))
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log_enabled, fast_routes=fast_routes)
    tracing.instrument_app(app)  # server span + request id/tenant/identity on spans; nothing while tracing is off
    if fast_routes and not tracing.is_active():  # with tracing on, the fast lane keeps its server span
        app.fast_entry = RequestContextMiddleware(app.slow_path, access_log=settings.access_log_enabled,
                                                  fast_routes=fast_routes)
    for module in modules:
        app.include_router(module.router)
    install_openapi(app)  # FastAPI's document plus the hand-described secrets routes (api/openapi.py)
    return app


class _App(FastAPI):
    """FastAPI, except that the hot GETs (``FAST_ROUTES``, the secret read) enter our request middleware directly.
    FastAPI 0.165 wraps every request in its own error, telemetry and body-limit layers before the user
    middleware; the fast lane needs none of them (RequestContextMiddleware answers every error itself, with the
    request id, metrics and the failure audit) and each costs the read path a few percent."""

    fast_entry: RequestContextMiddleware | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        entry = self.fast_entry
        if entry is not None and scope["type"] == "http" and entry.serves_fast(scope):
            scope["app"] = self
            await entry(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def slow_path(self, scope: Any, receive: Any, send: Any) -> None:
        """Never reached for a fast route (the entry serves it); anything else takes FastAPI's whole stack."""
        await FastAPI.__call__(self, scope, receive, send)


async def _on_error(request: Any, exc: Any) -> None:
    sv = getattr(request.app.state, "sv", None)
    hook = sv.components.get("on_error") if sv is not None else None
    if hook is not None:
        await hook(request, exc)


async def _before_response(scope: Any, status: int) -> Any:
    sv = getattr(scope["app"].state, "sv", None)
    hook = sv.components.get("before_response") if sv is not None else None
    return None if hook is None else await hook(scope, status)


def component(state: AppState, name: str) -> Any:
    return state.components[name]
