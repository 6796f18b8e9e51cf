"""Personal access tokens (skt_...), stored only as a keyed hash.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE personal_access_tokens (
            id            TEXT PRIMARY KEY,
            tenant_id     TEXT NOT NULL,
            partner_id    TEXT,
            identity_id   TEXT NOT NULL,
            identity_type TEXT NOT NULL,
            subject       TEXT NOT NULL,
            name          TEXT NOT NULL,
            token_hash    TEXT NOT NULL UNIQUE,
            token_prefix  TEXT NOT NULL,
            scopes        TEXT[] NOT NULL,
            groups        TEXT[] NOT NULL DEFAULT '{}',
            roles         TEXT[] NOT NULL DEFAULT '{}',
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at    TIMESTAMPTZ NOT NULL,
            last_used_at  TIMESTAMPTZ,
            revoked_at    TIMESTAMPTZ,
            revoked_by    TEXT
        );
        CREATE INDEX pats_tenant_identity ON personal_access_tokens (tenant_id, identity_id, created_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE personal_access_tokens")
