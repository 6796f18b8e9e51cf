"""Identity-cache roots mirrored from ScaiKey. Columns only; SQL lives in repositories/."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class Partner(SQLModel, table=True):
    __tablename__ = "partners"
    id: str = Field(primary_key=True)
    name: str = ""
    slug: str | None = None
    region: str | None = None
    status: str = "ACTIVE"
    created_at: datetime | None = None
    last_synced_at: datetime | None = None
    deleted_at: datetime | None = None


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True)
    partner_id: str
    name: str = ""
    slug: str | None = None
    status: str = "ACTIVE"
    created_at: datetime | None = None
    last_synced_at: datetime | None = None
    deleted_at: datetime | None = None
