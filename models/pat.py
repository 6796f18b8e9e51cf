"""Personal access token row. The token itself is never stored: only ``token_hash`` (HMAC-SHA256)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, Column, Text
from sqlmodel import Field, SQLModel


class PersonalAccessToken(SQLModel, table=True):
    __tablename__ = "personal_access_tokens"
    id: str = Field(primary_key=True)
    tenant_id: str
    partner_id: str | None = None
    identity_id: str
    identity_type: str
    subject: str
    name: str
    token_hash: str = Field(unique=True)
    token_prefix: str
    scopes: list[str] = Field(sa_column=Column(ARRAY(Text)))
    groups: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text)))
    roles: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text)))
    created_at: datetime | None = None
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
