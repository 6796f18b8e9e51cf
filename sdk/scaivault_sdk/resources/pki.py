"""Internal PKI (``/v1/pki``): lifecycle.md §3.2-3.4, docs/pki.md.

``client.pki.issue(role, common_name)`` and ``client.pki.sign(role, csr_pem)`` mint certificates; CAs, roles,
certificates, CSRs awaiting approval and trust anchors are sub-resources (``client.pki.cas`` ...). Issuing and
signing are never retried once the request may have reached the server: a repeat would mint a second
certificate. Revoking is safe to repeat (the first revocation stands) and is retried like a read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import Certificate, CertificateAuthority, IssuedCertificate, Record
from scaivault_sdk.resources.base import Resource, body, segment

PEM = "application/x-pem-file"


class PkiCAs(Resource):
    """``client.pki.cas``: certificate authorities (scope ``pki:admin``)."""

    async def create(self, name: str, common_name: str, *, ca_type: str = "root", parent_ca_id: str | None = None,
                     key_type: str | None = None, key_size: int | None = None, **fields: Any) -> CertificateAuthority:
        """Create a root CA, or an intermediate under ``parent_ca_id``. Extra fields (``validity_days``,
        ``organization``, ...) pass through as documented in docs/pki.md."""
        doc = body(name=name, common_name=common_name, ca_type=ca_type, parent_ca_id=parent_ca_id,
                   key_type=key_type, key_size=key_size, **fields)
        return CertificateAuthority.from_json(await self._json("POST", "/v1/pki/ca", json=doc, idempotent=False))

    async def list(self, *, limit: int | None = None) -> AsyncIterator[CertificateAuthority]:
        async for ca in self._paginate("/v1/pki/ca", "cas", CertificateAuthority.from_json, {}, limit=limit):
            yield ca

    async def get(self, ca_id: str) -> CertificateAuthority:
        return CertificateAuthority.from_json(await self._json("GET", f"/v1/pki/ca/{segment(ca_id)}"))

    async def certificate(self, ca_id: str) -> Record:
        """``{id, certificate_pem, ca_chain}`` (any valid token)."""
        return Record.from_json(await self._json("GET", f"/v1/pki/ca/{segment(ca_id)}/certificate"))

    async def revoke(self, ca_id: str, *, reason: str | None = None) -> Record:
        """Revoke the CA and everything under it (child CAs, their certificates). Safe to repeat."""
        return Record.from_json(await self._json("POST", f"/v1/pki/ca/{segment(ca_id)}/revoke",
                                                 json=body(reason=reason), idempotent=True))

    async def rebuild_crl(self, ca_id: str) -> Record:
        """Rebuild the CRL now: ``{ca_id, crl_pem, next_update}``."""
        return Record.from_json(await self._json("POST", f"/v1/pki/ca/{segment(ca_id)}/crl", idempotent=True))

    async def crl(self, ca_id: str) -> str:
        """The CA's current CRL as PEM (the public route: no token is sent)."""
        r = await self._t.request("GET", f"/v1/pki/ca/{segment(ca_id)}/crl", authenticated=False,
                                  headers={"Accept": PEM})
        return r.text


class PkiRoles(Resource):
    """``client.pki.roles``: what issue and sign may produce (scope ``pki:admin``)."""

    async def create(self, name: str, ca_id: str, **fields: Any) -> Record:
        """Fields as in docs/pki.md "Roles": ``allowed_domains``, ``allow_subdomains``, ``max_ttl``,
        ``key_type``, ``key_bits``, ``store_private_keys``, ..."""
        return Record.from_json(await self._json("POST", "/v1/pki/roles", json={"name": name, "ca_id": ca_id,
                                                                                **fields}, idempotent=False))

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for role in self._paginate("/v1/pki/roles", "roles", Record.from_json, {}, limit=limit):
            yield role

    async def get(self, name: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/pki/roles/{segment(name)}"))

    async def update(self, name: str, **fields: Any) -> Record:
        return Record.from_json(await self._json("PATCH", f"/v1/pki/roles/{segment(name)}", json=fields,
                                                 idempotent=True))

    async def delete(self, name: str) -> None:
        """Delete the role; certificates it issued stay valid."""
        await self._json("DELETE", f"/v1/pki/roles/{segment(name)}", idempotent=False)


class PkiCertificates(Resource):
    """``client.pki.certificates``: issued certificates (read: ``pki:issue``; revoke, private key: ``pki:admin``)."""

    async def list(self, *, ca_id: str | None = None, expiring_within: str | None = None,
                   include_revoked: bool = False, limit: int | None = None,
                   page_size: int = 100) -> AsyncIterator[Certificate]:
        params = {"ca_id": ca_id, "expiring_within": expiring_within,
                  "include_revoked": "true" if include_revoked else None}
        async for cert in self._paginate("/v1/pki/certificates", "certificates", Certificate.from_json, params,
                                         limit=limit, page_size=page_size):
            yield cert

    async def get(self, cert_id: str) -> Certificate:
        """Metadata and the PEM (``.certificate``); never a private key."""
        return Certificate.from_json(await self._json("GET", f"/v1/pki/certificates/{segment(cert_id)}"))

    async def pem(self, cert_id: str) -> str:
        r = await self._t.request("GET", f"/v1/pki/certificates/{segment(cert_id)}/pem")
        return r.text

    async def private_key(self, cert_id: str) -> Record:
        """The stored key of a role with ``store_private_keys`` (audited); ``NotFoundError`` otherwise."""
        return Record.from_json(await self._json("GET", f"/v1/pki/certificates/{segment(cert_id)}/private-key"))

    async def revoke(self, cert_id: str, *, reason: str | None = None) -> Certificate:
        """Revoke with an RFC 5280 ``reason`` (default ``unspecified``); the CA's CRL is rebuilt at once.
        Safe to repeat: the first revocation stands."""
        return Certificate.from_json(await self._json("POST", f"/v1/pki/certificates/{segment(cert_id)}/revoke",
                                                      json=body(reason=reason), idempotent=True))


class PkiCSRs(Resource):
    """``client.pki.csrs``: CSRs submitted for approval (submit/get: ``pki:issue``; list/approve/reject:
    ``pki:admin``)."""

    async def submit(self, role: str, csr_pem: str, *, common_name: str | None = None,
                     alt_names: list[str] | None = None, ip_sans: list[str] | None = None,
                     ttl: str | None = None) -> Record:
        doc = body(role=role, csr_pem=csr_pem, common_name=common_name, alt_names=alt_names, ip_sans=ip_sans, ttl=ttl)
        return Record.from_json(await self._json("POST", "/v1/pki/csr", json=doc, idempotent=False))

    async def list(self, *, status: str | None = None, limit: int | None = None) -> AsyncIterator[Record]:
        async for csr in self._paginate("/v1/pki/csr", "csrs", Record.from_json, {"status": status}, limit=limit):
            yield csr

    async def get(self, csr_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/pki/csr/{segment(csr_id)}"))

    async def approve(self, csr_id: str, *, reason: str | None = None) -> Record:
        """Sign the CSR against its role (mints a certificate: not retried once sent)."""
        return Record.from_json(await self._json("POST", f"/v1/pki/csr/{segment(csr_id)}/approve",
                                                 json=body(reason=reason), idempotent=False))

    async def reject(self, csr_id: str, *, reason: str | None = None) -> Record:
        return Record.from_json(await self._json("POST", f"/v1/pki/csr/{segment(csr_id)}/reject",
                                                 json=body(reason=reason), idempotent=False))


class PkiTrustAnchors(Resource):
    """``client.pki.trust_anchors``: outside CA certificates trusted for verification (``pki:admin``)."""

    async def add(self, name: str, certificate_pem: str) -> Record:
        return Record.from_json(await self._json("POST", "/v1/pki/trust-anchors", idempotent=False,
                                                 json={"name": name, "certificate_pem": certificate_pem}))

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for anchor in self._paginate("/v1/pki/trust-anchors", "trust_anchors", Record.from_json, {},
                                           limit=limit):
            yield anchor

    async def get(self, anchor_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/pki/trust-anchors/{segment(anchor_id)}"))

    async def delete(self, anchor_id: str) -> None:
        await self._json("DELETE", f"/v1/pki/trust-anchors/{segment(anchor_id)}", idempotent=False)


class PkiResource(Resource):
    """``client.pki``: ``issue``, ``sign`` and the sub-resources ``cas``, ``roles``, ``certificates``, ``csrs``,
    ``trust_anchors``."""

    def __init__(self, transport: Any) -> None:
        super().__init__(transport)
        self.cas = PkiCAs(transport)
        self.roles = PkiRoles(transport)
        self.certificates = PkiCertificates(transport)
        self.csrs = PkiCSRs(transport)
        self.trust_anchors = PkiTrustAnchors(transport)

    async def issue(self, role: str, common_name: str, *, alt_names: list[str] | None = None,
                    ip_sans: list[str] | None = None, ttl: str | None = None, auto_renew: bool | None = None,
                    renew_before: str | None = None) -> IssuedCertificate:
        """Issue a certificate with a server-generated key (scope ``pki:issue``). The private key is in the
        answer only. Not retried once the request may have been applied (a repeat mints another certificate)."""
        doc = body(common_name=common_name, alt_names=alt_names, ip_sans=ip_sans, ttl=ttl, auto_renew=auto_renew,
                   renew_before=renew_before)
        return IssuedCertificate.from_json(await self._json("POST", f"/v1/pki/issue/{segment(role)}", json=doc,
                                                            idempotent=False))

    async def sign(self, role: str, csr_pem: str, *, common_name: str | None = None,
                   alt_names: list[str] | None = None, ip_sans: list[str] | None = None,
                   ttl: str | None = None) -> IssuedCertificate:
        """Sign a CSR against ``role`` (key type and names checked). Not retried once it may have been applied."""
        doc = body(csr_pem=csr_pem, common_name=common_name, alt_names=alt_names, ip_sans=ip_sans, ttl=ttl)
        return IssuedCertificate.from_json(await self._json("POST", f"/v1/pki/sign/{segment(role)}", json=doc,
                                                            idempotent=False))
