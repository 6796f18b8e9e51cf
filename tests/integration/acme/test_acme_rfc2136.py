"""RFC 2136 against a real BIND: the provider is verified with a TSIG-signed SOA query (a wrong key is refused as
dns_provider_error, the secret never echoed), and a dns-01 order for a wildcard and its apex issues a certificate
with Pebble validating through BIND; the TXT record is gone afterwards."""

from __future__ import annotations

import base64

import dns.message
import dns.query
import dns.rdatatype

from tests.integration.acme.conftest import Acme, Bind


def _txt(bind: Bind, name: str) -> list[str]:
    host, port = bind.address.split(":")
    resp = dns.query.tcp(dns.message.make_query(name, "TXT"), host, port=int(port), timeout=5)
    return sorted(b"".join(r.strings).decode() for rr in resp.answer if rr.rdtype == dns.rdatatype.TXT for r in rr)


async def test_rfc2136_provider_and_a_dns01_order_through_bind(acme_factory, worker_process, bind: Bind) -> None:
    acme: Acme = await acme_factory(dns_server=bind.address)
    worker_process(acme.settings)
    creds = {"server": bind.address, "tsig_key_name": bind.key_name, "tsig_secret": bind.secret}
    wrong = {**creds, "tsig_secret": base64.b64encode(b"x" * 32).decode()}
    r = await acme.api.post("/v1/dns/providers", headers=acme.admin, json={
        "name": "bind-bad", "provider_type": "rfc2136", "credentials": wrong, "managed_zones": [bind.zone]})
    assert r.status_code == 502 and r.json()["error"]["code"] == "dns_provider_error", r.text
    assert wrong["tsig_secret"] not in r.text
    r = await acme.api.post("/v1/dns/providers", headers=acme.admin, json={
        "name": "bind", "provider_type": "rfc2136", "credentials": creds, "managed_zones": [bind.zone]})
    assert r.status_code == 201, r.text
    assert bind.secret not in r.text
    p = r.json()
    t = await acme.ok(await acme.api.post(f"/v1/dns/providers/{p['id']}/test", headers=acme.admin))
    assert t["ok"] and t["zones_visible"] == [bind.zone]
    acct = await acme.account()
    o = await acme.order(account_id=acct["id"], domains=[bind.zone, f"*.{bind.zone}"], challenge_type="dns-01",
                         dns_provider_id=p["id"], auto_renew=False)
    done = await acme.wait_order(o["id"])
    acme.verify_chain((await acme.api.get(f"/v1/pki/certificates/{done['certificate_id']}/pem",
                                          headers=acme.admin)).text)
    assert _txt(bind, f"_acme-challenge.{bind.zone}.") == []  # cleaned up
