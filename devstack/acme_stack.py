"""Pebble (an RFC 8555 test CA) and pebble-challtestsrv on loopback, for the ACME tests and ``make dev``.

``start_pebble(workdir, http_port=...)`` makes a throwaway TLS CA and listener certificate, writes the Pebble
config, starts challtestsrv (DNS for every name -> 127.0.0.1, TXT records through its management API) and Pebble
(validating http-01 on ``http_port`` of the name's address, i.e. a ScaiVault API port, and dns-01 through
challtestsrv), and returns their handles plus the URLs. Each is stopped by its own pid (``Handle.stop``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.services import Handle, find_pebble, free_port, port_open, start_process, wait_ready


@dataclass
class PebbleStack:
    directory_url: str
    ca_bundle: str  # trusts Pebble's TLS listener (not the certificates it issues)
    management_url: str  # Pebble's management API (roots: {management_url}/roots/0)
    challtestsrv_url: str  # challtestsrv's management API (set-txt, add-a, ...)
    dns_address: str
    handles: list[Handle] = field(default_factory=list)

    def stop(self) -> None:
        for h in reversed(self.handles):
            h.stop(timeout=5)


def _tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scaivault test pebble listener CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = workdir / "listener-ca.pem", workdir / "pebble.pem", workdir / "pebble.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def start_pebble(workdir: Path, *, http_port: int, validity_seconds: int | None = None,
                 dns_server: str | None = None, timeout: float = 30.0) -> PebbleStack:
    """``dns_server`` (host:port): the resolver Pebble validates with, instead of challtestsrv (e.g. a BIND
    server that an rfc2136 DNS provider updates)."""
    bins = find_pebble()
    workdir.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = _tls_files(workdir)
    acme_port, mgmt_port, dns_port, chall_mgmt = free_port(), free_port(), free_port(), free_port()
    cfg: dict[str, object] = {
        "listenAddress": f"127.0.0.1:{acme_port}", "managementListenAddress": f"127.0.0.1:{mgmt_port}",
        "certificate": str(cert_path), "privateKey": str(key_path), "httpPort": http_port, "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": False}
    if validity_seconds:
        cfg["certificateValidityPeriod"] = validity_seconds
    (workdir / "pebble-config.json").write_text(json.dumps({"pebble": cfg}))
    stack = PebbleStack(directory_url=f"https://127.0.0.1:{acme_port}/dir", ca_bundle=str(ca_path),
                        management_url=f"https://127.0.0.1:{mgmt_port}", challtestsrv_url=f"http://127.0.0.1:{chall_mgmt}",
                        dns_address=f"127.0.0.1:{dns_port}")
    try:
        stack.handles.append(start_process(
            "pebble-challtestsrv",
            [bins["pebble-challtestsrv"], "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-dns01", f"127.0.0.1:{dns_port}", "-management", f"127.0.0.1:{chall_mgmt}",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            None, workdir / "challtestsrv.log", lambda: port_open("127.0.0.1", chall_mgmt), timeout=timeout))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        stack.handles.append(start_process(
            "pebble", [bins["pebble"], "-config", str(workdir / "pebble-config.json"), "-dnsserver",
                       dns_server or stack.dns_address],
            env, workdir / "pebble.log", lambda: port_open("127.0.0.1", acme_port), timeout=timeout))
        import httpx

        def answers() -> bool:
            try:
                return httpx.get(stack.directory_url, verify=str(ca_path), timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_ready("pebble directory", answers, timeout)
    except BaseException:
        stack.stop()
        raise
    return stack


def pebble_root(stack: PebbleStack) -> str:
    """The root that signs Pebble's certificates (a fresh one on every Pebble start)."""
    import httpx

    return httpx.get(f"{stack.management_url}/roots/0", verify=stack.ca_bundle, timeout=5).text


DEV_ZONE = "dev.test"


def seed_dev(api_url: str, admin_token: str, stack: PebbleStack) -> dict[str, str]:
    """``make dev``: an ACME account on the local Pebble and a challtestsrv DNS provider for ``dev.test``, so one
    curl orders a certificate. Idempotent across restarts (existing ones with these names are reused)."""
    import httpx

    h = {"Authorization": f"Bearer {admin_token}"}
    out: dict[str, str] = {}
    with httpx.Client(base_url=api_url, headers=h, timeout=30) as c:
        # Pebble starts empty on every run: register a fresh account (its name carries the directory's port)
        name = "pebble-" + stack.directory_url.rsplit(":", 1)[1].split("/")[0]
        accounts = c.get("/v1/pki/acme/accounts", params={"limit": 1000}).json().get("accounts", [])
        acct = next((a for a in accounts if a["name"] == name), None) or c.post("/v1/pki/acme/accounts", json={
            "name": name, "provider": "custom", "environment": "staging", "directory_url": stack.directory_url,
            "email": "dev@dev.test"}).json()
        out["acme_account_id"] = acct.get("id", "")
        provs = c.get("/v1/dns/providers", params={"limit": 1000}).json().get("providers", [])
        prov = next((p for p in provs if p["name"] == "dev-challtestsrv"), None)
        if prov is not None:
            prov = c.patch(f"/v1/dns/providers/{prov['id']}", json={
                "credentials": {"management_url": stack.challtestsrv_url}}).json()
        else:
            prov = c.post("/v1/dns/providers", json={
                "name": "dev-challtestsrv", "provider_type": "challtestsrv", "managed_zones": [DEV_ZONE],
                "credentials": {"management_url": stack.challtestsrv_url}, "verify": True}).json()
        out["dns_provider_id"] = prov.get("id", "")
    return out
