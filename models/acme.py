"""ACME tables (migration 0016): accounts, DNS providers, orders, http-01 tokens (columns only).

``key_ciphertext`` and ``credentials_ciphertext`` hold envelope blobs sealed under the tenant key; never plaintext.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel


class AcmeAccount(SQLModel, table=True):
    __tablename__ = "acme_accounts"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    name: str
    provider: str
    environment: str
    directory_url: str
    email: str | None = None
    account_url: str | None = None
    key_ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = "valid"
    created_at: datetime | None = None
    created_by: str | None = None


class DnsProvider(SQLModel, table=True):
    __tablename__ = "dns_providers"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    name: str
    provider_type: str
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    managed_zones: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    credentials_ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    is_active: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None


class AcmeOrder(SQLModel, table=True):
    __tablename__ = "acme_orders"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    account_id: str
    dns_provider_id: str | None = None
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    challenge_type: str
    key_type: str
    status: str
    challenges: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    tries: int = 0
    certificate_id: str | None = None
    managed_id: str
    renewal_of_id: str | None = None
    auto_renew: bool = True
    renew_before: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None


class AcmeHttpToken(SQLModel, table=True):
    __tablename__ = "acme_http_tokens"
    token: str = Field(primary_key=True)
    order_id: str
    key_authorization: str
    created_at: datetime | None = None
