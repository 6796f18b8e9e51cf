"""Issued certificates and CRLs pass pkilint's RFC 5280 linters (issue 15 item 7): root, intermediate and leaf for
RSA and EC, and a CRL with an entry. A deliberately broken certificate shows the linter is really at work."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.pki.conftest import make_hierarchy, ok, write

BIN = Path(sys.executable).parent


def lint(tool: str, path: str, *extra: str) -> str:
    """Findings at NOTICE or above ('' when clean); pkilint is a [dev] dependency (pyproject.toml)."""
    res = subprocess.run([str(BIN / tool), "lint", *extra, "-s", "NOTICE", path], capture_output=True, text=True,
                         timeout=120, check=False)
    assert "Traceback" not in res.stderr, res.stderr
    out = (res.stdout + res.stderr).strip()
    assert (res.returncode == 0) == (out == ""), (res.returncode, out)  # the exit status grows with the severity
    return out


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
async def test_issued_certificates_and_crls_lint_clean(api, admin, tmp_path: Path, key_type: str):
    h = await make_hierarchy(api, admin, key_type=key_type)
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={
        "common_name": "api.svc.cluster.local", "alt_names": ["www.example.com"], "ip_sans": ["10.1.2.3"]}))
    root_pem = leaf["ca_chain"][-1]
    for name, pem in (("root", root_pem), ("inter", leaf["ca_chain"][0]), ("leaf", leaf["certificate"])):
        assert lint("lint_pkix_cert", write(tmp_path, f"{name}.pem", pem)) == "", name
    await ok(await api.post(f"/v1/pki/certificates/{leaf['id']}/revoke", headers=admin, json={"reason": "superseded"}))
    crl = await api.get(f"/v1/pki/ca/{h['inter']['id']}/crl", headers={"Accept": "application/x-pem-file"})
    assert lint("lint_crl", write(tmp_path, "crl.pem", crl.content), "-t", "CRL", "-p", "PKIX") == ""


def test_the_linter_reports_a_broken_certificate(tmp_path: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = write(tmp_path, "bad.pem", cert.public_bytes(serialization.Encoding.PEM))
    assert "pkix.ee_certificate_keycertsign_keyusage_set" in lint("lint_pkix_cert", path)
