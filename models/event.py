"""The transactional outbox row (one per state change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    __tablename__ = "events"
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    event_id: str = Field(unique=True)
    event_type: str
    tenant_id: str
    partner_id: str | None = None
    identity_id: str | None = None
    path: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    request_id: str | None = None
    created_at: datetime | None = None
    dispatched_at: datetime | None = None
