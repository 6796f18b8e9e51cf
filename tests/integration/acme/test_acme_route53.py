"""Route 53 against moto_server: the provider is verified by listing hosted zones through HTTP (credentials
sealed, never echoed), the adapter UPSERTs the _acme-challenge TXT record with every value (wildcard + apex share
it) and waits for INSYNC, and an order's TXT record is written during the order and deleted afterwards."""

from __future__ import annotations

import uuid
from typing import Any

import boto3

from services.acme.dns.route53 import Route53
from tests.integration.acme.conftest import Acme, poll

ZONE = "r53.example"
CREDS = {"access_key_id": "testing", "secret_access_key": "testing-secret", "region": "us-east-1"}


def _zone(moto: str) -> tuple[Any, str]:
    c = boto3.client("route53", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing")
    zid = c.create_hosted_zone(Name=ZONE, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    return c, zid


def _txt(c: Any, zid: str) -> dict[str, list[str]]:
    sets = c.list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]
    return {s["Name"]: sorted(r["Value"] for r in s["ResourceRecords"]) for s in sets if s["Type"] == "TXT"}


async def test_route53_adapter_writes_and_deletes_the_txt_record(moto_url: str) -> None:
    c, zid = _zone(moto_url)
    a = Route53(CREDS, {"endpoint_url": moto_url})
    assert ZONE in await a.zones()
    name = f"_acme-challenge.{ZONE}"
    await a.set_txt(name, ["apex-value", "wildcard-value"], 30)
    assert _txt(c, zid) == {name + ".": ['"apex-value"', '"wildcard-value"']}
    await a.delete_txt(name, ["apex-value", "wildcard-value"])
    assert _txt(c, zid) == {}
    await a.delete_txt(name, ["apex-value", "wildcard-value"])  # already gone: no error


async def test_route53_provider_through_http_and_an_order_cleans_its_record(acme_factory, worker_process,
                                                                          moto_url: str) -> None:
    acme: Acme = await acme_factory()
    c, zid = _zone(moto_url)
    r = await acme.api.post("/v1/dns/providers", headers=acme.admin, json={
        "name": "aws", "provider_type": "route53", "credentials": CREDS, "config": {"endpoint_url": moto_url},
        "managed_zones": [ZONE], "verify": True})
    assert r.status_code == 201, r.text
    p = r.json()
    assert "testing-secret" not in r.text and "credentials" not in p
    t = await acme.ok(await acme.api.post(f"/v1/dns/providers/{p['id']}/test", headers=acme.admin))
    assert t["ok"] and ZONE in t["zones_visible"]
    acct = await acme.account()
    # the first worker pauses after publishing: the TXT record is in Route 53 then
    pausing = worker_process(acme.settings.model_copy(update={"acme_crash_test_pause_seconds": 600.0}))
    o = await acme.order(account_id=acct["id"], domains=[ZONE, f"*.{ZONE}"], challenge_type="dns-01",
                         dns_provider_id=p["id"], auto_renew=False)

    async def published() -> dict[str, list[str]] | None:
        return _txt(c, zid) or None

    records = await poll(published, "the TXT record in Route 53")
    [(name, values)] = records.items()
    assert name == f"_acme-challenge.{ZONE}." and len(values) == 2  # apex and wildcard values, one record
    pausing.kill()
    # Pebble asks challtestsrv, which never sees Route 53's record: the attempt fails and the record is removed
    worker_process(acme.settings)

    async def failed() -> dict[str, Any] | None:
        got = await acme.get_order(o["id"])
        return got if got["error"] and got["error"]["code"] == "acme_challenge_failed" else None

    await poll(failed, "the challenge failure")
    assert await poll(lambda: _gone(c, zid), "the TXT record to be deleted")


async def _gone(c: Any, zid: str) -> bool:
    return _txt(c, zid) == {}
