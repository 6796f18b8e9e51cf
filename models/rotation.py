"""Rotation tables (migration 0012; columns only, SQL lives in repositories/rotation.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class RotationPolicy(SQLModel, table=True):
    __tablename__ = "rotation_policies"
    id: str = Field(primary_key=True)
    tenant_id: str
    name: str
    description: str = ""
    interval: str
    interval_seconds: int
    grace_period: str
    grace_seconds: int
    warn_before: str = ""
    auto_generate: bool = False
    secret_policy_id: str | None = None
    webhook_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    is_active: bool = True
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None


class RotationAssignment(SQLModel, table=True):
    __tablename__ = "rotation_assignments"
    secret_id: int = Field(primary_key=True)
    tenant_id: str
    policy_id: str
    assigned_at: datetime | None = None
    anchor_at: datetime
    cycle: int = 1
    status: str = "scheduled"
    last_rotated_at: datetime | None = None
    last_error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    workflow_started: bool = False


class RotationMark(SQLModel, table=True):
    __tablename__ = "rotation_marks"
    secret_id: int = Field(primary_key=True)
    cycle: int = Field(primary_key=True)
    mark: str = Field(primary_key=True)
    emitted: bool = True
    created_at: datetime | None = None


class RotationHistory(SQLModel, table=True):
    __tablename__ = "rotation_history"
    id: str = Field(primary_key=True)
    tenant_id: str
    policy_id: str
    secret_id: int | None = None
    secret_path: str
    cycle: int
    status: str
    trigger: str
    old_version: int | None = None
    new_version: int | None = None
    auto_generated: bool = False
    started_at: datetime | None = None
    completed_at: datetime | None = None
    grace_period_ends: datetime | None = None
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    attempt: int = 1


class SecretExpiryMark(SQLModel, table=True):
    __tablename__ = "secret_expiry_marks"
    secret_id: int = Field(primary_key=True)
    expires_at: datetime = Field(primary_key=True)
    mark: str = Field(primary_key=True)
    created_at: datetime | None = None
