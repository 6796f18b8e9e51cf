"""Identity cache mirrored from ScaiKey (users, groups, memberships), sync runs, webhook idempotency.

Columns only; SQL lives in repositories/identity/.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class IdentityUser(SQLModel, table=True):
    __tablename__ = "identity_users"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)  # usr_...
    email: str
    display_name: str = ""
    status: str = "ACTIVE"  # ACTIVE | SUSPENDED
    mfa_enabled: bool = False
    admin_role: str | None = None  # tenant_admin | partner_admin | super_admin
    admin_role_source: str | None = None  # manual | group | bootstrap
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    last_synced_at: datetime | None = None


class IdentityGroup(SQLModel, table=True):
    __tablename__ = "identity_groups"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)  # grp_...
    name: str
    group_type: str = "SECURITY"
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    last_synced_at: datetime | None = None


class IdentityMembership(SQLModel, table=True):
    __tablename__ = "identity_memberships"
    tenant_id: str = Field(primary_key=True)
    group_id: str = Field(primary_key=True)
    member_type: str = Field(primary_key=True)  # user | group
    member_id: str = Field(primary_key=True)
    membership_type: str = "DIRECT"  # DIRECT | NESTED
    via_group_id: str | None = None
    added_at: datetime | None = None
    deleted_at: datetime | None = None
    last_synced_at: datetime | None = None


class IdentitySyncRun(SQLModel, table=True):
    __tablename__ = "identity_sync_runs"
    sync_id: str = Field(primary_key=True)
    tenant_id: str = Field(primary_key=True)  # '*' for the row of a full sweep
    partner_id: str | None = None
    status: str = "pending"  # pending | running | succeeded | failed | skipped
    trigger: str = "manual"  # manual | schedule | webhook | initial | sweep
    reason: str | None = None
    requested_by: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB))
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ScaiKeyWebhookEvent(SQLModel, table=True):
    __tablename__ = "scaikey_webhook_events"
    event_id: str = Field(primary_key=True)
    event_type: str
    tenant_id: str | None = None
    handled: bool
    received_at: datetime | None = None
