"""Cross-tenant probes of every ACME and DNS-provider route with an id: tenant B (the partner admin through
/v1/t/tnt_acme_dev) addressing tenant A's account, provider, order or managed certificate gets exactly the answer
for a missing id, changes nothing, and B's lists hold nothing of A's. Naming A's account or provider in B's order
looks like a missing one."""

from __future__ import annotations

from typing import Any

from tests.helpers import PARTNER_ADMIN, bearer, client_token, user_token
from tests.integration.acme.conftest import Acme

B = "/v1/t/tnt_acme_dev"  # + the path after /v1
ZONE = "acme.example"


def _strip(body: dict[str, Any]) -> dict[str, Any]:
    err = dict(body["error"])
    err.pop("request_id", None)
    return err


async def test_cross_tenant_probes_answer_exactly_like_missing_ids(acme_factory, worker_process, scaikey) -> None:
    acme: Acme = await acme_factory()
    worker_process(acme.settings)
    acct = await acme.account()
    prov = await acme.challtestsrv_provider([ZONE])
    o = await acme.order(account_id=acct["id"], domains=[f"t.{ZONE}"], challenge_type="dns-01", auto_renew=False)
    done = await acme.wait_order(o["id"])
    erin = bearer(await user_token(scaikey, "erin@acme.example", scope="secrets:read"))
    assert (await acme.api.get("/v1/auth/whoami", headers=erin)).status_code == 200
    partner = bearer(await client_token(scaikey, PARTNER_ADMIN))
    cert = done["certificate_id"]
    probes = [
        ("get", "/v1/pki/acme/accounts/{}", acct["id"], "acmeacct_00000000000000000000000000", None),
        ("delete", "/v1/pki/acme/accounts/{}", acct["id"], "acmeacct_00000000000000000000000000", None),
        ("get", "/v1/dns/providers/{}", prov["id"], "dnsp_00000000000000000000000000", None),
        ("patch", "/v1/dns/providers/{}", prov["id"], "dnsp_00000000000000000000000000", {"is_active": False}),
        ("delete", "/v1/dns/providers/{}", prov["id"], "dnsp_00000000000000000000000000", None),
        ("post", "/v1/dns/providers/{}/test", prov["id"], "dnsp_00000000000000000000000000", None),
        ("get", "/v1/pki/acme/orders/{}", o["id"], "acmeord_00000000000000000000000000", None),
        ("get", "/v1/pki/acme/managed/{}", cert, "cert_00000000000000000000000000", None),
        ("post", "/v1/pki/acme/managed/{}/renew", cert, "cert_00000000000000000000000000", None),
        ("get", "/v1/pki/certificates/{}", cert, "cert_00000000000000000000000000", None),
    ]
    for method, tmpl, a_id, missing, body in probes:
        kw: dict[str, Any] = {"headers": partner}
        if body is not None:
            kw["json"] = body
        theirs = await acme.api.request(method.upper(), B + tmpl[3:].format(a_id), **kw)
        absent = await acme.api.request(method.upper(), B + tmpl[3:].format(missing), **kw)
        assert theirs.status_code == absent.status_code == 404, (tmpl, theirs.text, absent.text)
        got, want = _strip(theirs.json()), _strip(absent.json())
        assert got["code"] != "not_found", (tmpl, got)  # the route answered, not the router
        assert got["code"] == want["code"] and got["message"].replace(a_id, "X") == want["message"].replace(
            missing, "X"), (got, want)
    for path, key in (("/v1/pki/acme/accounts", "accounts"), ("/v1/dns/providers", "providers"),
                      ("/v1/pki/acme/orders", "orders")):
        r = await acme.api.get(B + path[3:], headers=partner)
        assert r.status_code == 200 and r.json()[key] == [], r.text
    r = await acme.api.post(B + "/pki/acme/orders", headers=partner, json={
        "account_id": acct["id"], "domains": [f"t.{ZONE}"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "acme_account_not_found"
    # nothing changed in A
    assert (await acme.api.get(f"/v1/dns/providers/{prov['id']}", headers=acme.admin)).json()["is_active"] is True
    assert (await acme.api.get(f"/v1/pki/acme/accounts/{acct['id']}", headers=acme.admin)).status_code == 200
    assert len(await acme.sql("SELECT id FROM acme_orders")) == 1
    assert (await acme.managed(cert))["renewals"] == 0
