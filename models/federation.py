"""Federation tables (migration 0014; columns only, SQL lives in repositories/federation.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class FederationBackend(SQLModel, table=True):
    __tablename__ = "federation_backends"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    name: str
    type: str
    mode: str
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))  # credential *paths* only
    path_mapping: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    sync_interval: str | None = None
    sync_interval_seconds: int | None = None
    health: str = "unknown"
    last_sync_at: datetime | None = None
    last_success_at: datetime | None = None
    last_sync_duration_ms: int | None = None
    secrets_synced: int = 0
    last_counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON))
    last_error: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class FederationItem(SQLModel, table=True):
    """The sync ledger: what the last sync saw remotely and wrote locally for one path."""

    __tablename__ = "federation_items"
    backend_id: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    remote_path: str
    remote_version: str | None = None
    local_version: int | None = None
    remote_deleted: bool = False
    synced_at: datetime | None = None


class FederationConflict(SQLModel, table=True):
    __tablename__ = "federation_conflicts"
    id: str = Field(primary_key=True)
    tenant_id: str
    backend_id: str
    path: str
    backend_path: str
    local_version: int | None = None
    remote_version_id: str | None = None
    detected_at: datetime | None = None
    resolution: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
