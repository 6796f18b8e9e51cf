"""``ScaiVaultClient``: the async client. Build it with a token or with ScaiKey client credentials.

::

    async with ScaiVaultClient("https://vault.example", token="skt_...") as vault:
        secret = await vault.secrets.read("app/db")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from scaivault_sdk.auth import ClientCredentials, Credential, StaticToken
from scaivault_sdk.cache import ReadCache
from scaivault_sdk.errors import ConfigurationError
from scaivault_sdk.resources.acme import AcmeResource, DnsProvidersResource
from scaivault_sdk.resources.audit import AuditResource
from scaivault_sdk.resources.auth import AuthResource
from scaivault_sdk.resources.dynamic import DynamicResource
from scaivault_sdk.resources.federation import FederationResource
from scaivault_sdk.resources.identity import IdentityResource
from scaivault_sdk.resources.pki import PkiResource
from scaivault_sdk.resources.policies import PoliciesResource
from scaivault_sdk.resources.rotation import RotationResource
from scaivault_sdk.resources.secrets import SecretsResource
from scaivault_sdk.resources.subscriptions import SubscriptionsResource
from scaivault_sdk.resources.webhooks import WebhooksResource
from scaivault_sdk.transport import RetryPolicy, Transport


class ScaiVaultClient:
    """Async ScaiVault client.

    :param url: the API base URL (``SCAIVAULT_URL``), e.g. ``https://vault.example``.
    :param token: a bearer token (personal access token ``skt_...`` or a JWT).
    :param client_id, client_secret, token_url: instead of ``token``, the client-credentials grant against
        ScaiKey's tenant token endpoint; the token is fetched on first use and refreshed before it expires.
    :param scope: scopes to request with client credentials (space-separated).
    :param tenant_id: act in this tenant (``X-Tenant-ID``; partner admins only for a foreign tenant).
    :param retry: a ``RetryPolicy``; ``RetryPolicy(max_retries=0)`` disables retries.
    :param cache_ttl: seconds to keep secret values in an in-process read cache; None (default) disables it.
        Invalidate early with ``handle_event`` when webhook or subscription events arrive.
    :param transport: an ``httpx.AsyncBaseTransport`` (tests, proxies).

    Resources: ``secrets``, ``partner_secrets``, ``policies``, ``audit``, ``identity``, ``webhooks``,
    ``subscriptions``, ``auth``, ``pki`` (``.cas``, ``.roles``, ``.certificates``, ``.csrs``, ``.trust_anchors``),
    ``acme``, ``dns_providers``, ``rotation`` (``.policies``), ``dynamic`` (``.engines``, ``.roles``,
    ``.leases``), ``leases`` and ``federation``.
    """

    def __init__(self, url: str, *, token: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, token_url: str | None = None, scope: str | None = None,
                 tenant_id: str | None = None, timeout: float = 30.0, retry: RetryPolicy | None = None,
                 cache_ttl: float | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        if not url:
            raise ConfigurationError("url is required (or SCAIVAULT_URL)")
        credential: Credential | None = None
        if token and (client_id or client_secret):
            raise ConfigurationError("pass either token= or client_id/client_secret, not both")
        if token:
            credential = StaticToken(token)
        elif client_id or client_secret:
            credential = ClientCredentials(token_url or "", client_id or "", client_secret or "", scope=scope)
        self.cache = ReadCache(cache_ttl) if cache_ttl else None
        self._transport = Transport(url, credential, tenant_id=tenant_id, timeout=timeout, retry=retry,
                                    transport=transport, headers=headers)
        t = self._transport
        self.secrets = SecretsResource(t, "/v1/secrets", self.cache)
        self.partner_secrets = SecretsResource(t, "/v1/partner/secrets", self.cache)
        self.policies = PoliciesResource(t)
        self.audit = AuditResource(t)
        self.identity = IdentityResource(t)
        self.webhooks = WebhooksResource(t)
        self.subscriptions = SubscriptionsResource(t)
        self.auth = AuthResource(t)
        self.pki = PkiResource(t)
        self.acme = AcmeResource(t)
        self.dns_providers = DnsProvidersResource(t)
        self.rotation = RotationResource(t)
        self.dynamic = DynamicResource(t)
        self.leases = self.dynamic.leases
        self.federation = FederationResource(t)

    @classmethod
    def from_env(cls, **overrides: Any) -> ScaiVaultClient:
        """Build from ``SCAIVAULT_URL``, ``SCAIVAULT_TOKEN`` and ``SCAIVAULT_TENANT_ID``; keyword args win."""
        kwargs: dict[str, Any] = {"url": os.environ.get("SCAIVAULT_URL", ""),
                                  "token": os.environ.get("SCAIVAULT_TOKEN") or None,
                                  "tenant_id": os.environ.get("SCAIVAULT_TENANT_ID") or None}
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def handle_event(self, event: Mapping[str, Any]) -> None:
        """Apply a webhook or subscription event to the read cache (no-op without a cache)."""
        if self.cache is not None:
            self.cache.invalidate_event(event)

    async def health(self) -> dict[str, Any]:
        """``GET /v1/health/ready`` (no token needed)."""
        r = await self._transport.request("GET", "/v1/health/ready", authenticated=False)
        return r.json()  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ScaiVaultClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ScaiVaultClient(url={self.base_url!r})"
