"""The DNS adapter contract and helpers shared by the adapters."""

from __future__ import annotations

from typing import Any, Protocol

# route53: AWS (boto3). rfc2136: dynamic DNS update with TSIG (BIND, PowerDNS, Knot; dnspython).
# challtestsrv: pebble-challtestsrv's management API (tests and make dev).
SUPPORTED: tuple[str, ...] = ("route53", "rfc2136", "challtestsrv")
# the spec's table (lifecycle.md §3.7): known but refused at creation with a validation_error naming SUPPORTED
KNOWN_UNSUPPORTED: tuple[str, ...] = ("scaidns", "cloudflare", "azure", "google", "digitalocean", "powerdns")


class DnsError(Exception):
    """A provider failure; the message names the operation and never carries credentials."""


class DnsAdapter(Protocol):
    async def zones(self) -> list[str]:
        """The zones the credentials can see (``verify`` and ``test``)."""

    async def set_txt(self, name: str, values: list[str], wait_seconds: float) -> None:
        """Write every value of the TXT record ``name`` and wait until the zone serves them (or raise)."""

    async def delete_txt(self, name: str, values: list[str]) -> None:
        """Remove the values written by :meth:`set_txt`; never raises for an already-absent record."""


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def config_str(cfg: dict[str, Any], key: str, default: str | None = None) -> str | None:
    v = cfg.get(key, default)
    return v if isinstance(v, str) and v else default
