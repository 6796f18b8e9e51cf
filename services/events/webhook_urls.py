"""Webhook URL safety (SSRF): scheme rules, and refusal of hosts that resolve to non-public addresses.

Checked at create/update and again at every delivery attempt (DNS rebinding); the delivery then connects to
the very address that passed the check (see services/events/webhook_sender.py), so a second lookup cannot swap it.

Rules (decision, spec lifecycle.md §5.3 says "HTTPS endpoint"):
* ``https`` is required; ``http`` only when private targets are allowed (``settings.allow_private_webhooks``:
  dev by default, WEBHOOK_ALLOW_PRIVATE overrides).
* no user-info (``user:pass@``) in the URL, at most 2048 characters, a host is required.
* unless private targets are allowed, every address the host resolves to must be globally routable:
  private, loopback, link-local, multicast, reserved, unspecified and shared (CGNAT) ranges are refused,
  and so are the IPv6 forms that reach IPv4 or a private network another way: 6to4 (``2002::/16``) and Teredo
  (``2001::/32``) tunnels, deprecated site-local ``fec0::/10``, NAT64 local-use ``64:ff9b:1::/48``, and any
  address that embeds a non-public IPv4 (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``,
  IPv4-translated ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, ISATAP ``…:5efe:a.b.c.d``) — the
  embedded address is judged by the IPv4 rules (``reason`` names what it is). A NAT64 address embedding a
  public IPv4 is allowed (IPv6-only networks reach IPv4 webhooks that way). Errors are ``400 invalid_url``
  with ``details.reason``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import AppError

MAX_URL_CHARS = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    scheme: str
    host: str          # as written (no brackets for IPv6)
    port: int
    path: str          # path + query, at least "/"


def _refuse(message: str, reason: str, **details: object) -> AppError:
    return AppError("invalid_url", message, {"field": "url", "reason": reason, **details})


def parse(url: str, *, allow_private: bool) -> Target:
    """Syntax and scheme checks (no network)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise _refuse(f"url must be 1..{MAX_URL_CHARS} characters", "length")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("url is not a valid absolute URL", "malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _refuse("url must use https", "scheme", scheme=scheme)
    if scheme == "http" and not allow_private:
        raise _refuse("url must use https (plain http is allowed only where private webhooks are enabled)",
                      "scheme", scheme=scheme)
    if parts.username is not None or parts.password is not None:
        raise _refuse("url must not contain credentials", "credentials")
    host = parts.hostname
    if not host:
        raise _refuse("url must name a host", "malformed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


# IPv6 ranges refused outright: tunnels that carry traffic to an IPv4 address chosen by the sender (6to4,
# Teredo), deprecated site-local, and NAT64 local-use (its IPv4 embedding is network-specific).
_REFUSED_V6 = (
    ("6to4", ipaddress.IPv6Network("2002::/16")),
    ("teredo", ipaddress.IPv6Network("2001::/32")),
    ("site_local", ipaddress.IPv6Network("fec0::/10")),
    ("nat64_local", ipaddress.IPv6Network("64:ff9b:1::/48")),
)
# IPv6 ranges whose last 32 bits are an IPv4 address the traffic ends up at (or that some stack treats so).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")             # RFC 6052 well-known prefix
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 SIIT
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")            # RFC 4291 §2.5.5.1, deprecated
_ISATAP_IID = 0x00005EFE                                    # RFC 5214 interface id ``[02]00:5efe:a.b.c.d``


def _low_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _ipv6_reason(ip: ipaddress.IPv6Address) -> tuple[bool, str | None]:
    """(decided, reason) for the IPv6 forms the generic flags get wrong; decided=False: use the flags."""
    if ip.ipv4_mapped is not None:
        return True, refusal_reason(ip.ipv4_mapped)
    for name, net in _REFUSED_V6:
        if ip in net:
            return True, name
    if ip in _NAT64:
        return True, refusal_reason(_low_ipv4(ip))  # a public IPv4 through the NAT64 gateway is fine
    if ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # not ``::`` / ``::1``
        return True, refusal_reason(_low_ipv4(ip)) or "reserved"  # never a routable form, even when public
    if (int(ip) >> 32) & 0xFDFFFFFF == _ISATAP_IID:
        embedded = refusal_reason(_low_ipv4(ip))
        if embedded is not None:
            return True, embedded
    return False, None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not an acceptable webhook target, or None if it is globally routable."""
    if isinstance(ip, ipaddress.IPv6Address):
        decided, reason = _ipv6_reason(ip)
        if decided:
            return reason
    checks = (
        ("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified), ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast), ("reserved", ip.is_reserved), ("private", ip.is_private),
    )
    for name, hit in checks:
        if hit:
            return name
    return None if ip.is_global else "non_global"


async def resolve(target: Target, *, allow_private: bool) -> list[str]:
    """Resolve ``target.host``; refuse (invalid_url) if it fails or any address is non-public.

    Returns the addresses (the first is the one to connect to).
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addrs = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            raise _refuse(f"host {target.host!r} does not resolve", "unresolvable", host=target.host) from None
        addrs = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos))
        if not addrs:
            raise _refuse(f"host {target.host!r} does not resolve", "unresolvable", host=target.host)
    if not allow_private:
        for ip in addrs:
            reason = refusal_reason(ip)
            if reason is not None:
                raise _refuse(f"url resolves to a {reason.replace('_', '-')} address, which is not allowed",
                              reason, host=target.host, address=str(ip))
    return [str(a) for a in addrs]


async def check(url: str, *, allow_private: bool) -> Target:
    """Full create/update-time check: syntax, scheme and resolution."""
    target = parse(url, allow_private=allow_private)
    await resolve(target, allow_private=allow_private)
    return target
