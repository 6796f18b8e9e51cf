"""Managed certificates through ACME (``/v1/pki/acme``) and the DNS providers that answer dns-01 challenges
(``/v1/dns/providers``): lifecycle.md §3.5-3.7, docs/acme.md. The spec documents no SDK surface for ACME; this
is the thin layer over the routes as built. Objects are ``Record`` (fields per docs/acme.md).

Registering an account, placing an order and creating a DNS provider are never retried once sent; the
renew/pause/resume signals are safe to repeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import Record
from scaivault_sdk.resources.base import Resource, body, segment


class AcmeResource(Resource):
    """``client.acme``: accounts and managed certificates (``pki:admin``), orders (``pki:issue``)."""

    async def create_account(self, name: str, provider: str, email: str, *, environment: str | None = None,
                             directory_url: str | None = None, eab_kid: str | None = None,
                             eab_hmac_key: str | None = None) -> Record:
        """Register with the CA; the account key is generated server-side and never returned."""
        doc = body(name=name, provider=provider, email=email, environment=environment, directory_url=directory_url,
                   eab_kid=eab_kid, eab_hmac_key=eab_hmac_key)
        return Record.from_json(await self._json("POST", "/v1/pki/acme/accounts", json=doc, idempotent=False))

    async def accounts(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for a in self._paginate("/v1/pki/acme/accounts", "accounts", Record.from_json, {}, limit=limit):
            yield a

    async def get_account(self, account_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/pki/acme/accounts/{segment(account_id)}"))

    async def delete_account(self, account_id: str) -> None:
        await self._json("DELETE", f"/v1/pki/acme/accounts/{segment(account_id)}", idempotent=False)

    async def order(self, account_id: str, domains: list[str], *, challenge_type: str | None = None,
                    dns_provider_id: str | None = None, key_type: str | None = None, auto_renew: bool | None = None,
                    renew_before: str | None = None) -> Record:
        """Place an order (``status: pending``); its renewal workflow works it. Poll ``get_order``."""
        doc = body(account_id=account_id, domains=domains, challenge_type=challenge_type,
                   dns_provider_id=dns_provider_id, key_type=key_type, auto_renew=auto_renew,
                   renew_before=renew_before)
        return Record.from_json(await self._json("POST", "/v1/pki/acme/orders", json=doc, idempotent=False))

    async def orders(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for o in self._paginate("/v1/pki/acme/orders", "orders", Record.from_json, {}, limit=limit):
            yield o

    async def get_order(self, order_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/pki/acme/orders/{segment(order_id)}"))

    async def managed(self, cert_id: str) -> Record:
        """A managed certificate's renewal state (``status``, ``next_renewal``, ``last_error``, ``history``...)."""
        return Record.from_json(await self._json("GET", f"/v1/pki/acme/managed/{segment(cert_id)}"))

    async def _signal(self, cert_id: str, action: str) -> Record:
        return Record.from_json(await self._json("POST", f"/v1/pki/acme/managed/{segment(cert_id)}/{action}",
                                                 idempotent=True))

    async def renew(self, cert_id: str) -> Record:
        return await self._signal(cert_id, "renew")

    async def pause(self, cert_id: str) -> Record:
        return await self._signal(cert_id, "pause")

    async def resume(self, cert_id: str) -> Record:
        return await self._signal(cert_id, "resume")


class DnsProvidersResource(Resource):
    """``client.dns_providers`` (``pki:admin``). Credentials are sealed server-side and never returned."""

    async def create(self, name: str, provider_type: str, credentials: dict[str, Any], *,
                     config: dict[str, Any] | None = None, managed_zones: list[str] | None = None,
                     verify: bool | None = None) -> Record:
        doc = body(name=name, provider_type=provider_type, credentials=credentials, config=config,
                   managed_zones=managed_zones, verify=verify)
        return Record.from_json(await self._json("POST", "/v1/dns/providers", json=doc, idempotent=False))

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for p in self._paginate("/v1/dns/providers", "providers", Record.from_json, {}, limit=limit):
            yield p

    async def get(self, provider_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/dns/providers/{segment(provider_id)}"))

    async def update(self, provider_id: str, **fields: Any) -> Record:
        return Record.from_json(await self._json("PATCH", f"/v1/dns/providers/{segment(provider_id)}", json=fields,
                                                 idempotent=True))

    async def delete(self, provider_id: str) -> None:
        await self._json("DELETE", f"/v1/dns/providers/{segment(provider_id)}", idempotent=False)

    async def test(self, provider_id: str) -> Record:
        """``{ok, zones_visible, latency_ms, error}``."""
        return Record.from_json(await self._json("POST", f"/v1/dns/providers/{segment(provider_id)}/test",
                                                 idempotent=True))
