"""RFC 2136 dynamic DNS update (BIND, PowerDNS, Knot), TSIG-signed, through dnspython (message building, TSIG and
the wire protocol are not hand-rolled). Credentials: ``server`` (``host`` or ``host:port``, the zone's primary),
``tsig_key_name``, ``tsig_secret`` (base64), ``tsig_algorithm`` (default ``hmac-sha256``).

``zones`` asks the server for each managed zone's SOA with a TSIG-signed query (a wrong key fails: BADSIG/BADKEY),
``set_txt`` sends one UPDATE adding every value and then queries the server until it serves them all, and
``delete_txt`` removes exactly those values."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.acme.dns.base import DnsError, fqdn

_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


class Rfc2136:
    def __init__(self, credentials: dict[str, Any], config: dict[str, Any]) -> None:
        import dns.name
        import dns.tsigkeyring

        server = credentials.get("server")
        if not isinstance(server, str) or not server:
            raise DnsError("rfc2136 credentials need server (host or host:port)")
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
        self.host = host or server
        try:
            self.port = int(port or 53)
        except ValueError:
            raise DnsError("rfc2136 server port must be a number") from None
        key_name, secret = credentials.get("tsig_key_name"), credentials.get("tsig_secret")
        algorithm = credentials.get("tsig_algorithm", "hmac-sha256")
        if not isinstance(key_name, str) or not key_name or not isinstance(secret, str) or not secret:
            raise DnsError("rfc2136 credentials need tsig_key_name and tsig_secret (base64)")
        if algorithm not in _ALGORITHMS:
            raise DnsError(f"rfc2136 tsig_algorithm must be one of {', '.join(_ALGORITHMS)}")
        try:
            self.keyring = dns.tsigkeyring.from_text({key_name: secret})
        except Exception:  # binascii / dns errors: the message must not echo the secret
            raise DnsError("rfc2136 tsig_secret is not valid base64") from None
        self.key_name = dns.name.from_text(key_name)
        self.algorithm = dns.name.from_text(algorithm)
        self.zones_ = [z for z in config.get("zones", []) if isinstance(z, str) and not z.startswith("*.")]
        self.timeout = 5.0

    def _query(self, name: str, rdtype: str) -> Any:
        import dns.message
        import dns.query

        q = dns.message.make_query(fqdn(name), rdtype)
        q.use_tsig(self.keyring, keyname=self.key_name, algorithm=self.algorithm)
        return dns.query.tcp(q, self.host, port=self.port, timeout=self.timeout)

    def _zones(self) -> list[str]:
        import dns.rcode
        import dns.rdatatype

        visible = []
        for zone in self.zones_:
            resp = self._query(zone, "SOA")
            if resp.rcode() == dns.rcode.NOERROR and any(
                    r.rdtype == dns.rdatatype.SOA for r in resp.answer):
                visible.append(zone)
        return visible

    async def zones(self) -> list[str]:
        try:
            return await asyncio.to_thread(self._zones)
        except Exception as exc:
            raise DnsError(f"rfc2136 SOA query to {self.host}:{self.port} failed: {type(exc).__name__}") from None

    def _zone_for(self, name: str) -> str:
        host = name.rstrip(".")
        best = max((z for z in self.zones_ if host == z or host.endswith("." + z)), key=len, default=None)
        if best is None:
            raise DnsError(f"rfc2136: {host} is in none of the provider's zones")
        return best

    def _update(self, action: str, name: str, values: list[str]) -> None:
        import dns.query
        import dns.rcode
        import dns.update

        upd = dns.update.Update(fqdn(self._zone_for(name)), keyring=self.keyring, keyname=self.key_name,
                                keyalgorithm=self.algorithm)
        for v in values:
            if action == "add":
                upd.add(fqdn(name), 30, "TXT", f'"{v}"')
            else:
                upd.delete(fqdn(name), "TXT", f'"{v}"')
        resp = dns.query.tcp(upd, self.host, port=self.port, timeout=self.timeout)
        if resp.rcode() != dns.rcode.NOERROR:
            raise DnsError(f"rfc2136 UPDATE {name} refused: {dns.rcode.to_text(resp.rcode())}")

    def _served(self, name: str, values: list[str]) -> bool:
        import dns.rdatatype

        resp = self._query(name, "TXT")
        got = {b"".join(r.strings).decode() for rr in resp.answer if rr.rdtype == dns.rdatatype.TXT for r in rr}
        return set(values) <= got

    def _set(self, name: str, values: list[str], wait_seconds: float) -> None:
        self._update("add", name, values)
        deadline = time.monotonic() + wait_seconds
        while not self._served(name, values):
            if time.monotonic() > deadline:
                raise DnsError(f"rfc2136: {name} TXT not served after {wait_seconds:.0f}s")
            time.sleep(1)

    async def set_txt(self, name: str, values: list[str], wait_seconds: float) -> None:
        try:
            await asyncio.to_thread(self._set, name, values, wait_seconds)
        except DnsError:
            raise
        except Exception as exc:
            raise DnsError(f"rfc2136 UPDATE {name} failed: {type(exc).__name__}") from None

    async def delete_txt(self, name: str, values: list[str]) -> None:
        try:
            await asyncio.to_thread(self._update, "delete", name, values)
        except DnsError:
            raise
        except Exception as exc:
            raise DnsError(f"rfc2136 delete {name} failed: {type(exc).__name__}") from None
