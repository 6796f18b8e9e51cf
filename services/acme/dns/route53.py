"""AWS Route 53 (boto3). Credentials: ``access_key_id``, ``secret_access_key`` (both optional: the host's role),
``region`` (default us-east-1); config ``endpoint_url`` (moto, tests). The TXT record is UPSERTed with every
value for the name (a wildcard and its apex share ``_acme-challenge.<domain>``) and the change is polled until
``INSYNC`` (Route 53's "visible at the authoritative servers")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.acme.dns.base import DnsError, config_str, fqdn


class Route53:
    def __init__(self, credentials: dict[str, Any], config: dict[str, Any]) -> None:
        self.kw: dict[str, Any] = {"region_name": config_str(credentials, "region", "us-east-1")}
        if credentials.get("access_key_id"):
            self.kw["aws_access_key_id"] = credentials["access_key_id"]
            self.kw["aws_secret_access_key"] = credentials.get("secret_access_key")
        endpoint = config_str(config, "endpoint_url")
        if endpoint:
            self.kw["endpoint_url"] = endpoint

    def _client(self) -> Any:
        import boto3

        return boto3.client("route53", **self.kw)

    def _zones(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for page in self._client().get_paginator("list_hosted_zones").paginate():
            out += [(z["Name"].rstrip("."), z["Id"]) for z in page["HostedZones"]]
        return out

    async def zones(self) -> list[str]:
        try:
            return [n for n, _ in await asyncio.to_thread(self._zones)]
        except Exception as exc:
            raise DnsError(f"route53 ListHostedZones failed: {type(exc).__name__}") from None

    def _zone_for(self, name: str) -> str:
        host = name.rstrip(".")
        best = max(((n, i) for n, i in self._zones() if host == n or host.endswith("." + n)),
                   key=lambda z: len(z[0]), default=None)
        if best is None:
            raise DnsError(f"route53 has no hosted zone for {host}")
        return best[1]

    def _change(self, action: str, name: str, values: list[str], timeout: float | None) -> None:
        c = self._client()
        zone = self._zone_for(name)
        rrset = {"Name": fqdn(name), "Type": "TXT", "TTL": 30,
                 "ResourceRecords": [{"Value": f'"{v}"'} for v in values]}
        resp = c.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
            "Comment": "scaivault acme dns-01", "Changes": [{"Action": action, "ResourceRecordSet": rrset}]})
        if timeout is None:
            return
        change_id = resp["ChangeInfo"]["Id"]
        deadline = time.monotonic() + timeout
        while c.get_change(Id=change_id)["ChangeInfo"]["Status"] != "INSYNC":
            if time.monotonic() > deadline:
                raise DnsError(f"route53 change for {name} not INSYNC after {timeout:.0f}s")
            time.sleep(2)

    async def set_txt(self, name: str, values: list[str], wait_seconds: float) -> None:
        try:
            await asyncio.to_thread(self._change, "UPSERT", name, values, wait_seconds)
        except DnsError:
            raise
        except Exception as exc:
            raise DnsError(f"route53 UPSERT {name} failed: {type(exc).__name__}") from None

    async def delete_txt(self, name: str, values: list[str]) -> None:
        try:
            await asyncio.to_thread(self._change, "DELETE", name, values, None)
        except Exception as exc:
            if "not found" in str(exc).lower() or "InvalidChangeBatch" in type(exc).__name__:
                return
            raise DnsError(f"route53 DELETE {name} failed: {type(exc).__name__}") from None
