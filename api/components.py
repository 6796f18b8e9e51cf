"""Core components every request needs: KMS, Temporal client, tenant resolver, trusted proxies."""

from __future__ import annotations

import ipaddress
import logging

from api.state import AppState
from auth.tenancy import TenantResolver
from worker.client import connect

log = logging.getLogger("scaivault.api")


async def setup_core(state: AppState):  # type: ignore[no-untyped-def]
    s = state.settings
    from crypto.kms import build_kms

    state.components["kms"] = build_kms(s)
    state.components["tenants"] = TenantResolver(state.db)
    # Placeholders replaced by the policies and audit features' set-up hooks (see api/app.py COMPONENTS).
    from audit.recorder import NullAuditRecorder
    from services.access import AllowAll

    state.components.setdefault("access", AllowAll())
    state.components.setdefault("audit", NullAuditRecorder())
    state.components["trusted_proxies"] = [
        ipaddress.ip_network(c.strip()) for c in s.trusted_proxies.split(",") if c.strip()
    ]
    try:
        state.temporal = await connect(s, lazy=True)
    except Exception as exc:  # the API serves reads without Temporal; readiness reports it
        log.warning("temporal client unavailable", extra={"error": str(exc)})
    return None


async def setup_auth(state: AppState):  # type: ignore[no-untyped-def]
    """JWKS cache (refreshed in the background), JWT verifier, authenticator with revocation listener."""
    import redis.asyncio as aioredis

    from auth.authenticator import Authenticator
    from auth.jwks import JwksCache
    from auth.jwt_verify import JwtVerifier
    from clients.scaikey import ScaiKeyClient

    s = state.settings
    scaikey = ScaiKeyClient(s)
    jwks = JwksCache(scaikey, ttl=s.jwks_cache_ttl_seconds, min_refresh_interval=s.jwks_min_refresh_interval_seconds)
    pubsub_redis = aioredis.Redis.from_url(s.redis_url, socket_connect_timeout=1, socket_timeout=None)
    authenticator = Authenticator(s, state.db, JwtVerifier(s, jwks), scaikey, redis=pubsub_redis)
    state.components.update(scaikey=scaikey, jwks=jwks, authenticator=authenticator)
    await jwks.refresh(force=True)  # warm; failures keep serving and retry on first use
    jwks.start()
    authenticator.start()
    # introspection refused (bad client credentials) is reported by readiness, not silently skipped
    state.components.setdefault("health_extras", {})["token_introspection"] = authenticator.introspection_health
    await authenticator.probe_introspection()

    async def teardown() -> None:
        await authenticator.stop()
        await jwks.stop()
        await pubsub_redis.aclose()
        await scaikey.aclose()

    return teardown
