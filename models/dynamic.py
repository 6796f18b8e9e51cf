"""Dynamic-credential tables (migration 0013; columns only, SQL lives in repositories/dynamic.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class DynamicEngine(SQLModel, table=True):
    __tablename__ = "dynamic_engines"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    name: str
    type: str
    plugin: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    default_ttl: str
    default_ttl_seconds: int
    max_ttl: str
    max_ttl_seconds: int
    revocation_paused: bool = False
    connection_status: str = "unknown"
    last_checked_at: datetime | None = None
    last_error: str | None = None
    revoker_wake_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None


class DynamicRole(SQLModel, table=True):
    __tablename__ = "dynamic_roles"
    id: str = Field(primary_key=True)
    tenant_id: str
    engine_id: str
    name: str
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    default_ttl: str | None = None
    max_ttl: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None


class DynamicLease(SQLModel, table=True):
    __tablename__ = "dynamic_leases"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    engine_id: str
    engine_name: str
    role_name: str
    username: str
    external_id: str | None = None
    status: str = "pending"
    created_at: datetime | None = None
    created_by: str | None = None
    expires_at: datetime
    max_expires_at: datetime
    renewed_at: datetime | None = None
    revoke_reason: str | None = None
    revoke_requested_by: str | None = None
    revoked_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


class DynamicRootRotation(SQLModel, table=True):
    __tablename__ = "dynamic_root_rotations"
    id: str = Field(primary_key=True)
    tenant_id: str
    engine_id: str
    status: str = "pending"
    sealed_password: bytes | None = None
    new_version: int | None = None
    error: str | None = None
    requested_by: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
