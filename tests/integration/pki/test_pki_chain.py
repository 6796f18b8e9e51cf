"""Root -> intermediate -> role -> issued leaf through HTTP, checked with ``openssl verify`` and extension by
extension (issue 15 items 1, 3, 7)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.integration.pki.conftest import make_hierarchy, ok, openssl, write

pytestmark = pytest.mark.skipif(openssl("version").returncode != 0, reason="openssl CLI needed")


def _ext(cert: x509.Certificate, cls: type) -> Any:
    return cert.extensions.get_extension_for_class(cls).value


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
async def test_issued_leaf_verifies_against_the_chain_with_openssl(api, admin, tmp_path: Path, key_type: str):
    h = await make_hierarchy(api, admin, key_type=key_type)
    root, inter = h["root"], h["inter"]
    assert root["ca_type"] == "root" and inter["parent_ca_id"] == root["id"] and inter["is_active"]
    # validity defaults: 3650 days root, 1825 intermediate
    vf, vu = (datetime.fromisoformat(root[k].replace("Z", "+00:00")) for k in ("valid_from", "valid_until"))
    assert abs((vu - vf) - timedelta(days=3650)) < timedelta(minutes=2)
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={
        "common_name": "api.svc.cluster.local", "alt_names": ["www.example.com"], "ip_sans": ["10.0.0.7"],
        "ttl": "24h"}))
    assert "BEGIN PRIVATE KEY" in leaf["private_key"]
    assert [c.strip() for c in leaf["ca_chain"]] == [inter_pem.strip() for inter_pem in (
        (await ok(await api.get(f"/v1/pki/ca/{inter['id']}/certificate", headers=admin)))["certificate_pem"],
        (await ok(await api.get(f"/v1/pki/ca/{root['id']}/certificate", headers=admin)))["certificate_pem"])]
    root_pem = (await api.get(f"/v1/pki/ca/{root['id']}/certificate",
                              headers={**admin, "Accept": "application/x-pem-file"}))
    assert root_pem.headers["content-type"].startswith("application/x-pem-file")
    rf = write(tmp_path, "root.pem", root_pem.content)
    itf = write(tmp_path, "inter.pem", leaf["ca_chain"][0])
    lf = write(tmp_path, "leaf.pem", leaf["certificate"])
    res = openssl("verify", "-CAfile", rf, "-untrusted", itf, lf)
    assert res.returncode == 0 and b"OK" in res.stdout, res.stdout + res.stderr
    # the key in the response is the certificate's key
    kf = write(tmp_path, "leaf.key", leaf["private_key"])
    pub_of_key = openssl("pkey", "-in", kf, "-pubout").stdout
    pub_of_cert = openssl("x509", "-in", lf, "-noout", "-pubkey").stdout
    assert pub_of_key == pub_of_cert and pub_of_key
    # without the intermediate the chain does not verify (the leaf really comes from the intermediate)
    assert openssl("verify", "-CAfile", rf, lf).returncode != 0

    cert = x509.load_pem_x509_certificate(leaf["certificate"].encode())
    ica = x509.load_pem_x509_certificate(leaf["ca_chain"][0].encode())
    rca = x509.load_pem_x509_certificate(root_pem.content)
    assert cert.serial_number.bit_length() >= 64 and cert.serial_number > 0
    assert leaf["serial_number"] == ":".join(f"{b:02x}" for b in cert.serial_number.to_bytes(16, "big"))
    san = _ext(cert, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["api.svc.cluster.local", "www.example.com"]  # CN in SAN
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert ku.value.key_encipherment is (key_type == "rsa")
    assert list(_ext(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _ext(cert, x509.AuthorityKeyIdentifier).key_identifier == _ext(ica, x509.SubjectKeyIdentifier).digest
    assert _ext(ica, x509.AuthorityKeyIdentifier).key_identifier == _ext(rca, x509.SubjectKeyIdentifier).digest
    dp = _ext(cert, x509.CRLDistributionPoints)
    assert [n.value for n in dp[0].full_name] == [f"https://vault.example.test/v1/pki/ca/{inter['id']}/crl"]
    ibc = _ext(ica, x509.BasicConstraints)
    assert ibc.ca is True and ibc.path_length == 0
    assert _ext(rca, x509.BasicConstraints).ca is True
    assert isinstance(cert.public_key(), rsa.RSAPublicKey if key_type == "rsa" else ec.EllipticCurvePublicKey)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(hours=24, seconds=31)
    # the certificate is listed and readable; its PEM route serves the same PEM; no key is kept or shown
    got = await ok(await api.get(f"/v1/pki/certificates/{leaf['id']}", headers=admin))
    assert got["certificate"] == leaf["certificate"] and got["private_key_stored"] is False
    assert "private_key" not in got
    pem = await api.get(f"/v1/pki/certificates/{leaf['id']}/pem", headers=admin)
    assert pem.status_code == 200 and pem.text == leaf["certificate"]
    listed = await ok(await api.get(f"/v1/pki/certificates?ca_id={inter['id']}", headers=admin))
    assert [c["id"] for c in listed["certificates"]] == [leaf["id"]]
    ca_now = await ok(await api.get(f"/v1/pki/ca/{inter['id']}", headers=admin))
    assert ca_now["certificates_issued"] == 1


async def test_validity_is_clamped_to_the_issuer_and_ttl_beyond_it_is_refused(api, admin):
    root = await ok(await api.post("/v1/pki/ca", headers=admin, json={
        "name": "short-root", "common_name": "Short Root", "ca_type": "root", "key_type": "ec", "validity_days": 2}),
        201)
    inter = await ok(await api.post("/v1/pki/ca", headers=admin, json={
        "name": "short-inter", "common_name": "Short Inter", "ca_type": "intermediate", "parent_ca_id": root["id"],
        "key_type": "ec", "validity_days": 30}), 201)
    assert inter["valid_until"] == root["valid_until"]  # clamped to the parent
    await ok(await api.post("/v1/pki/roles", headers=admin, json={
        "name": "short", "ca_id": inter["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
        "max_ttl": "30d", "key_type": "ec", "key_bits": 256}), 201)
    r = await api.post("/v1/pki/issue/short", headers=admin, json={"common_name": "a.example.com", "ttl": "5d"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    assert "outlive" in r.json()["error"]["message"]
    await ok(await api.post("/v1/pki/issue/short", headers=admin, json={"common_name": "a.example.com", "ttl": "1d"}))


async def test_certificate_gauges_on_the_metrics_endpoint(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    for cn in ("m1.example.com", "m2.example.com"):
        await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": cn, "ttl": "72h"}))
    r = await api.get("/v1/metrics", headers=admin)
    assert r.status_code == 200, r.text
    assert f'scaivault_certificates_active{{ca_id="{h["inter"]["id"]}"}} 2.0' in r.text
    assert 'scaivault_certificates_expiring_soon{within_days="7"} 2.0' in r.text
    assert 'scaivault_certificates_expiring_soon{within_days="1"} 0.0' in r.text


async def test_keys_are_sealed_at_rest_bound_to_their_row_and_events_are_emitted(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec", role_extra={"store_private_keys": True})
    await ok(await api.post("/v1/pki/roles", headers=admin, json={
        "name": "nostore", "ca_id": h["inter"]["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
        "max_ttl": "24h", "key_type": "ec", "key_bits": 256}), 201)
    kept = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "k.example.com"}))
    gone = await ok(await api.post("/v1/pki/issue/nostore", headers=admin, json={"common_name": "g.example.com"}))
    assert kept["private_key_stored"] is True and gone["private_key_stored"] is False
    got = await ok(await api.get(f"/v1/pki/certificates/{kept['id']}/private-key", headers=admin))
    assert got["private_key"] == kept["private_key"]
    r = await api.get(f"/v1/pki/certificates/{gone['id']}/private-key", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["details"]["reason"] == "private_key_not_stored", r.text
    state = api._transport.app.state.sv  # type: ignore[attr-defined]
    async with state.db.raw() as conn:
        blobs = await conn.fetch("SELECT id, key_ciphertext FROM pki_cas WHERE tenant_id = 'tnt_acme_prod'")
        leaf_blob = await conn.fetchval("SELECT key_ciphertext FROM pki_certificates WHERE id = $1", kept["id"])
        assert await conn.fetchval("SELECT key_ciphertext FROM pki_certificates WHERE id = $1", gone["id"]) is None
        for b in [*(r["key_ciphertext"] for r in blobs), leaf_blob]:
            assert b[:2] == b"SV" and b"PRIVATE KEY" not in b and b"-----" not in b
        # AAD binds a CA key to its CA: the root's key copied onto the intermediate does not open
        root_blob = next(r["key_ciphertext"] for r in blobs if r["id"] == h["root"]["id"])
        await conn.execute("UPDATE pki_cas SET key_ciphertext = $1 WHERE id = $2", root_blob, h["inter"]["id"])
    r = await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "x.example.com"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "decryption_failed", r.text
    assert "PRIVATE" not in r.text
    async with state.db.raw() as conn:
        events = await conn.fetch("SELECT event_type, data FROM events WHERE event_type LIKE 'certificate.%'"
                                  " ORDER BY seq")
    assert [e["event_type"] for e in events] == ["certificate.issued", "certificate.issued"]
    assert all("PRIVATE" not in e["data"] for e in events)
    r = await api.post(f"/v1/pki/certificates/{gone['id']}/revoke", headers=admin, json={"reason": "superseded"})
    assert r.status_code == 500  # the intermediate's key no longer opens: the revocation (and its CRL) roll back
    assert (await ok(await api.get(f"/v1/pki/certificates/{gone['id']}", headers=admin)))["revoked"] is False
