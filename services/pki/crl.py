"""CRLs: rebuilt on every revocation and by the ``pki`` maintenance schedule before ``nextUpdate``.

A CRL is valid for :data:`CRL_LIFETIME` (72 h, Vault's default); the schedule rebuilds every CRL whose
``nextUpdate`` is less than :data:`REBUILD_BEFORE` away (docs/pki.md "CRLs").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization

from repositories.pki import cas as ca_repo
from repositories.pki import certificates as cert_repo
from services.pki import common, x509

CRL_LIFETIME = timedelta(hours=72)
REBUILD_BEFORE = timedelta(hours=24)


async def load_issuer(conn: asyncpg.Connection, keyring: Any, base_url: str, tenant_id: str,
                      partner_id: str | None, ca: asyncpg.Record) -> x509.Issuer:
    blob = await ca_repo.key_blob(conn, tenant_id, ca["id"])
    if blob is None:
        raise common.ca_not_found(ca["id"])
    pem = await common.open_(keyring, blob, common.ca_key_aad(tenant_id, ca["id"]), tenant_id=tenant_id,
                             partner_id=partner_id)
    return x509.Issuer(cert=x509.load_cert(ca["certificate_pem"]), key=x509.load_private(pem),
                       crl_url=common.crl_url(base_url, ca["id"]))


async def rebuild(conn: asyncpg.Connection, issuer: x509.Issuer, tenant_id: str, ca_id: str, *,
                  now: datetime | None = None) -> tuple[bytes, datetime]:
    """Sign and store a fresh CRL for ``ca_id`` (inside the caller's transaction). Returns (DER, nextUpdate)."""
    now = now or datetime.now(UTC)
    rows = await cert_repo.revoked_serials(conn, tenant_id, ca_id)
    revoked = [x509.Revoked(int(r["serial_number"], 16), r["revoked_at"], r["revocation_reason"]) for r in rows]
    number = await ca_repo.next_crl_number(conn, tenant_id, ca_id)
    next_update = min(now + CRL_LIFETIME, max(issuer.cert.not_valid_after_utc, now + timedelta(minutes=1)))
    crl = await common.cpu(x509.build_crl, issuer, revoked, number=number, this_update=now, next_update=next_update)
    der = crl.public_bytes(serialization.Encoding.DER)
    await ca_repo.store_crl(conn, tenant_id, ca_id, der, now, next_update)
    return der, next_update


def to_pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n"


async def public_crl(conn: asyncpg.Connection, ca_id: str, path_tenant: str | None) -> bytes:
    """The CRL of ``ca_id`` for the unauthenticated route. A tenant named in the path must own the CA."""
    row = await ca_repo.get_public(conn, ca_id)
    if row is None or row["crl_der"] is None or (path_tenant is not None and path_tenant != row["tenant_id"]):
        raise common.ca_not_found(ca_id)
    return bytes(row["crl_der"])
