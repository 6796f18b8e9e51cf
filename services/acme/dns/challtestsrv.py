"""pebble-challtestsrv as a DNS provider: its management API sets and clears TXT records on the DNS server Pebble
asks (tests and ``make dev``). Credentials: ``management_url`` (e.g. ``http://127.0.0.1:8055``)."""

from __future__ import annotations

from typing import Any

import httpx

from services.acme.dns.base import DnsError, fqdn


class ChallTestSrv:
    def __init__(self, credentials: dict[str, Any], config: dict[str, Any]) -> None:
        url = credentials.get("management_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DnsError("challtestsrv credentials need management_url (http://host:port)")
        self.url = url.rstrip("/")
        self.zones_ = [z for z in config.get("zones", []) if isinstance(z, str)]

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.post(self.url + path, json=body)
        except httpx.HTTPError as exc:
            raise DnsError(f"challtestsrv {path} failed: {type(exc).__name__}") from None
        if r.status_code >= 300:
            raise DnsError(f"challtestsrv {path} answered {r.status_code}")

    async def zones(self) -> list[str]:
        await self._post("/clear-txt", {"host": "_scaivault-verify.invalid."})  # proves the API answers
        return list(self.zones_)

    async def set_txt(self, name: str, values: list[str], wait_seconds: float) -> None:
        for v in values:  # challtestsrv is the authoritative server Pebble asks: visible once set
            await self._post("/set-txt", {"host": fqdn(name), "value": v})

    async def delete_txt(self, name: str, values: list[str]) -> None:
        await self._post("/clear-txt", {"host": fqdn(name)})
