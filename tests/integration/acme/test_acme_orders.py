"""ACME through HTTP against a real Pebble + challtestsrv: accounts (key never returned), DNS providers
(verify/test, credentials never echoed), http-01 and dns-01 orders (wildcard with its apex) issuing certificate
records that verify against Pebble's root, and bad input refused with its code and nothing ordered."""

from __future__ import annotations

import orjson

from tests.integration.acme.conftest import Acme

ZONE = "acme.example"


async def test_accounts_keep_their_key_sealed_and_bad_directories_are_refused(acme_factory) -> None:
    acme: Acme = await acme_factory()
    acct = await acme.account("pebble-main")
    assert acct["provider"] == "custom" and acct["status"] == "valid" and acct["id"].startswith("acmeacct_")
    assert not {"key", "private_key", "account_key", "key_ciphertext"} & set(acct)
    got = await acme.ok(await acme.api.get(f"/v1/pki/acme/accounts/{acct['id']}", headers=acme.admin))
    assert got == acct
    listed = await acme.ok(await acme.api.get("/v1/pki/acme/accounts", headers=acme.admin))
    assert [a["id"] for a in listed["accounts"]] == [acct["id"]]
    [row] = await acme.sql("SELECT key_ciphertext, account_url FROM acme_accounts WHERE id = $1", acct["id"])
    assert b"PRIVATE KEY" not in row["key_ciphertext"] and row["account_url"].startswith("https://127.0.0.1")
    # a URL that answers but is not an ACME directory, a custom account without a URL, EAB-only CAs
    for body, field in (
        ({"directory_url": f"{acme.pebble.management_url}/roots/0"}, "directory_url"),
        ({"directory_url": None}, "directory_url"),
    ):
        r = await acme.api.post("/v1/pki/acme/accounts", headers=acme.admin, json={
            "name": "bad", "provider": "custom", "environment": "staging", **{k: v for k, v in body.items() if v}})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["details"]["fields"][0]["field"] == field
    r = await acme.api.post("/v1/pki/acme/accounts", headers=acme.admin, json={
        "name": "zs", "provider": "zerossl", "environment": "production"})
    assert r.status_code == 422 and "external account binding" in r.json()["error"]["message"]
    r = await acme.api.get("/v1/pki/acme/accounts/acmeacct_nope", headers=acme.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "acme_account_not_found"
    assert len(await acme.sql("SELECT id FROM acme_accounts")) == 1


async def test_dns_providers_crud_verify_and_test(acme_factory) -> None:
    acme: Acme = await acme_factory()
    p = await acme.challtestsrv_provider([ZONE], name="chall")
    assert p["provider_type"] == "challtestsrv" and p["is_active"] and p["managed_zones"] == [ZONE]
    assert "credentials" not in p and acme.pebble.challtestsrv_url not in orjson.dumps(p).decode()
    [row] = await acme.sql("SELECT credentials_ciphertext FROM dns_providers WHERE id = $1", p["id"])
    assert acme.pebble.challtestsrv_url.encode() not in row["credentials_ciphertext"]
    t = await acme.ok(await acme.api.post(f"/v1/dns/providers/{p['id']}/test", headers=acme.admin))
    assert t["ok"] is True and t["zones_visible"] == [ZONE] and isinstance(t["latency_ms"], int)
    upd = await acme.ok(await acme.api.patch(f"/v1/dns/providers/{p['id']}", headers=acme.admin,
                                             json={"managed_zones": [ZONE, "other.example"]}))
    assert upd["managed_zones"] == [ZONE, "other.example"]
    # unsupported types name the supported ones; credentials that fail verify are refused; nothing stored
    r = await acme.api.post("/v1/dns/providers", headers=acme.admin, json={
        "name": "cf", "provider_type": "cloudflare", "credentials": {"api_token": "x"}, "managed_zones": [ZONE]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["details"]["supported"] == ["route53", "rfc2136", "challtestsrv"]
    r = await acme.api.post("/v1/dns/providers", headers=acme.admin, json={
        "name": "dead", "provider_type": "challtestsrv", "credentials": {"management_url": "http://127.0.0.1:9"},
        "managed_zones": [ZONE], "verify": True})
    assert r.status_code == 502 and r.json()["error"]["code"] == "dns_provider_error"
    assert "127.0.0.1:9" not in r.text
    assert [x["name"] for x in await acme.sql("SELECT name FROM dns_providers")] == ["chall"]
    assert (await acme.api.delete(f"/v1/dns/providers/{p['id']}", headers=acme.admin)).status_code == 204
    r = await acme.api.get(f"/v1/dns/providers/{p['id']}", headers=acme.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "dns_provider_not_found"


async def test_dns01_wildcard_with_apex_and_http01_issue_verifiable_certificates(acme_factory, worker_process) -> None:
    acme: Acme = await acme_factory()
    worker_process(acme.settings)
    acct = await acme.account()
    prov = await acme.challtestsrv_provider([ZONE])
    o = await acme.order(account_id=acct["id"], domains=[ZONE, f"*.{ZONE}"], challenge_type="dns-01",
                         auto_renew=False)
    assert o["status"] == "pending" and o["dns_provider_id"] == prov["id"]  # matched by managed_zones
    done = await acme.wait_order(o["id"])
    assert done["certificate_id"] == o["managed_certificate_id"]
    assert sorted((c["domain"], c["status"]) for c in done["challenges"]) == [(f"*.{ZONE}", "valid"),
                                                                             (ZONE, "valid")]
    cert = await acme.ok(await acme.api.get(f"/v1/pki/certificates/{done['certificate_id']}", headers=acme.admin))
    assert cert["source"] == "acme" and cert["ca_id"] is None and sorted(cert["alt_names"]) == [f"*.{ZONE}", ZONE]
    assert cert["private_key_stored"] is True
    pem = (await acme.api.get(f"/v1/pki/certificates/{done['certificate_id']}/pem", headers=acme.admin)).text
    acme.verify_chain(pem)
    [row] = await acme.sql("SELECT key_ciphertext FROM pki_certificates WHERE id = $1", done["certificate_id"])
    assert b"PRIVATE KEY" not in row["key_ciphertext"]
    # http-01: Pebble fetches /.well-known/acme-challenge/<token> from this API (no token); tokens are removed
    h = await acme.order(account_id=acct["id"], domains=[f"web.{ZONE}"], challenge_type="http-01", auto_renew=False)
    hd = await acme.wait_order(h["id"])
    acme.verify_chain((await acme.api.get(f"/v1/pki/certificates/{hd['certificate_id']}/pem",
                                          headers=acme.admin)).text)
    assert await acme.sql("SELECT token FROM acme_http_tokens") == []
    assert (await acme.api.get("/.well-known/acme-challenge/" + "A" * 43)).status_code == 404
    issued = [e for e in await acme.events("certificate.issued") if e.get("source") == "acme"]
    assert sorted(e["certificate_id"] for e in issued) == sorted([done["certificate_id"], hd["certificate_id"]])
    audit = await acme.sql("SELECT resource_id, success FROM audit_log WHERE action = 'pki_acme_order'"
                           " AND identity_id = 'system:acme-renewer' ORDER BY seq")
    assert [(a["resource_id"], a["success"]) for a in audit] == [(done["certificate_id"], True),
                                                                 (hd["certificate_id"], True)]


async def test_bad_orders_are_refused_with_their_code_and_nothing_is_ordered(acme_factory) -> None:
    acme: Acme = await acme_factory()
    acct = await acme.account()
    prov = await acme.challtestsrv_provider([ZONE])
    cases = [
        ({"account_id": "acmeacct_missing", "domains": [ZONE]}, 404, "acme_account_not_found"),
        ({"account_id": acct["id"], "domains": [ZONE], "dns_provider_id": "dnsp_missing"}, 404,
         "dns_provider_not_found"),
        ({"account_id": acct["id"], "domains": [f"*.{ZONE}"], "challenge_type": "http-01"}, 422, "validation_error"),
        ({"account_id": acct["id"], "domains": ["outside.example"], "dns_provider_id": prov["id"]}, 422,
         "validation_error"),
        ({"account_id": acct["id"], "domains": ["outside.example"]}, 422, "validation_error"),
        ({"account_id": acct["id"], "domains": ["not a name"]}, 422, "validation_error"),
        ({"account_id": acct["id"], "domains": [ZONE], "challenge_type": "tls-alpn-01"}, 422, "validation_error"),
        ({"account_id": acct["id"], "domains": [ZONE], "renew_before": "soon"}, 400, "invalid_duration"),
    ]
    for body, status, code in cases:
        r = await acme.api.post("/v1/pki/acme/orders", headers=acme.admin, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
    r = await acme.api.post("/v1/pki/acme/orders", headers=acme.admin, json={
        "account_id": acct["id"], "domains": ["outside.example"], "dns_provider_id": prov["id"]})
    assert "outside.example" in r.json()["error"]["message"]
    assert await acme.sql("SELECT id FROM acme_orders") == []
    r = await acme.api.get("/v1/pki/acme/orders/acmeord_missing", headers=acme.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "acme_order_not_found"
