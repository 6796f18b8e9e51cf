"""Per-request context handed to routers by the ``Authorized`` dependency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from auth.principal import Principal


@dataclass(slots=True)
class RequestContext:
    principal: Principal
    tenant_id: str            # the effective tenant after path/header/claim resolution
    partner_id: str | None    # that tenant's partner
    request_id: str
    source_ip: str | None
    user_agent: str | None
    scope: str | None         # the scope the route required
    category: str | None      # rate-limit category of the route
    audited: bool = False     # set once an audit entry was written for this request
    audited_in_tx: bool = False  # that entry went into a change's transaction (a later failure rolls it back)
    correlation_id: str | None = None  # X-Correlation-ID, else the request id (workflow id for background work)
    started_at: float = field(default_factory=time.perf_counter)  # perf_counter at request start
    # Response headers added for this request (the middleware appends them), e.g. X-RateLimit-*.
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # What the request is doing, declared by the router before any check, so that a failure (denial,
    # not-found, validation) can still be audited with the right action and resource.
    action: str | None = None
    resource_path: str | None = None
    permission: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # merged into every audit entry of the request
    # Per-request scratch for components (e.g. the secrets cache generation the rate limiter read): never audited.
    internal: dict[str, Any] = field(default_factory=dict)

    def describe(self, action: str, *, path: str | None = None, permission: str | None = None,
                 resource_type: str | None = None, resource_id: str | None = None) -> RequestContext:
        self.action, self.resource_path, self.permission = action, path, permission
        self.resource_type, self.resource_id = resource_type, resource_id
        return self
