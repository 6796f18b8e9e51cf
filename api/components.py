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
    state.components["trusted_proxies"] = [
        ipaddress.ip_network(c.strip()) for c in s.trusted_proxies.split(",") if c.strip()
    ]
    try:
        state.temporal = await connect(s, lazy=True)
    except Exception as exc:  # the API serves reads without Temporal; readiness reports it
        log.warning("temporal client unavailable", extra={"error": str(exc)})
    return None
