"""Foundation: identity-cache roots (partners, tenants) and the transactional event outbox.

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE partners (
            id             TEXT PRIMARY KEY,
            name           TEXT NOT NULL DEFAULT '',
            slug           TEXT,
            region         TEXT,
            status         TEXT NOT NULL DEFAULT 'ACTIVE',
            created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
            last_synced_at TIMESTAMPTZ,
            deleted_at     TIMESTAMPTZ
        );
        CREATE TABLE tenants (
            id             TEXT PRIMARY KEY,
            partner_id     TEXT NOT NULL,
            name           TEXT NOT NULL DEFAULT '',
            slug           TEXT,
            status         TEXT NOT NULL DEFAULT 'ACTIVE',
            created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
            last_synced_at TIMESTAMPTZ,
            deleted_at     TIMESTAMPTZ
        );
        CREATE INDEX tenants_partner ON tenants (partner_id);

        -- Transactional outbox: a change and its event commit together (docs/architecture.md "Events").
        CREATE TABLE events (
            seq           BIGSERIAL PRIMARY KEY,
            event_id      TEXT NOT NULL UNIQUE,
            event_type    TEXT NOT NULL,
            tenant_id     TEXT NOT NULL,
            partner_id    TEXT,
            identity_id   TEXT,
            path          TEXT,
            data          JSONB NOT NULL DEFAULT '{}'::jsonb,
            request_id    TEXT,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            dispatched_at TIMESTAMPTZ
        );
        CREATE INDEX events_undispatched ON events (seq) WHERE dispatched_at IS NULL;
        CREATE INDEX events_tenant_seq ON events (tenant_id, seq);
        CREATE INDEX events_created ON events (created_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE events; DROP TABLE tenants; DROP TABLE partners;")
