"""PKI tables (migration 0011): CAs, roles, issued certificates, CSRs, trust anchors, expiry notices (columns only).

``key_ciphertext`` columns hold envelope blobs sealed under the tenant key (services/pki/common.py); never plaintext.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel


class PkiCa(SQLModel, table=True):
    __tablename__ = "pki_cas"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str
    name: str
    common_name: str
    ca_type: str
    parent_ca_id: str | None = None
    key_type: str
    key_size: int
    serial_number: str
    certificate_pem: str
    key_ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    valid_from: datetime
    valid_until: datetime
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    certificates_issued: int = 0
    crl_number: int = 0
    crl_der: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    crl_this_update: datetime | None = None
    crl_next_update: datetime | None = None
    created_at: datetime | None = None
    created_by: str | None = None


class PkiRole(SQLModel, table=True):
    __tablename__ = "pki_roles"
    id: str = Field(primary_key=True)
    tenant_id: str
    name: str
    ca_id: str
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None


class PkiCertificate(SQLModel, table=True):
    __tablename__ = "pki_certificates"
    id: str = Field(primary_key=True)
    tenant_id: str
    ca_id: str
    role_name: str | None = None
    source: str
    serial_number: str
    common_name: str
    alt_names: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    ip_sans: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    key_type: str
    key_bits: int
    certificate_pem: str
    key_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None


class PkiCsr(SQLModel, table=True):
    __tablename__ = "pki_csrs"
    id: str = Field(primary_key=True)
    tenant_id: str
    role_name: str
    csr_pem: str
    common_name: str
    names: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    ip_sans: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    ttl: str | None = None
    status: str
    requested_by: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    certificate_id: str | None = None
    created_at: datetime | None = None


class PkiTrustAnchor(SQLModel, table=True):
    __tablename__ = "pki_trust_anchors"
    id: str = Field(primary_key=True)
    tenant_id: str
    name: str
    certificate_pem: str
    subject: str
    issuer: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    created_at: datetime | None = None
    created_by: str | None = None


class PkiExpiryNotice(SQLModel, table=True):
    __tablename__ = "pki_expiry_notices"
    certificate_id: str = Field(primary_key=True)
    threshold_days: int = Field(primary_key=True)
    emitted_at: datetime | None = None
