"""DNS providers for dns-01 (lifecycle.md §3.7): one adapter per ``provider_type``; see :func:`adapter`."""

from __future__ import annotations

from typing import Any

from services.acme.dns.base import SUPPORTED, DnsAdapter, DnsError


def adapter(provider_type: str, credentials: dict[str, Any], config: dict[str, Any]) -> DnsAdapter:
    if provider_type == "route53":
        from services.acme.dns.route53 import Route53

        return Route53(credentials, config)
    if provider_type == "rfc2136":
        from services.acme.dns.rfc2136 import Rfc2136

        return Rfc2136(credentials, config)
    if provider_type == "challtestsrv":
        from services.acme.dns.challtestsrv import ChallTestSrv

        return ChallTestSrv(credentials, config)
    raise DnsError(f"provider_type '{provider_type}' is not supported; supported: {', '.join(SUPPORTED)}")


__all__ = ["SUPPORTED", "DnsAdapter", "DnsError", "adapter"]
