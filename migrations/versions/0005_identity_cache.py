"""Identity cache: users, groups, memberships mirrored from ScaiKey; sync runs; webhook idempotency.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE identity_users (
            tenant_id         TEXT NOT NULL,
            id                TEXT NOT NULL,
            email             TEXT NOT NULL,
            display_name      TEXT NOT NULL DEFAULT '',
            status            TEXT NOT NULL DEFAULT 'ACTIVE',
            mfa_enabled       BOOLEAN NOT NULL DEFAULT false,
            admin_role        TEXT CHECK (admin_role IN ('tenant_admin', 'partner_admin', 'super_admin')),
            admin_role_source TEXT CHECK (admin_role_source IN ('manual', 'group', 'bootstrap')),
            created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            deleted_at        TIMESTAMPTZ,
            last_synced_at    TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX identity_users_email ON identity_users (tenant_id, lower(email));
        CREATE INDEX identity_users_admins ON identity_users (tenant_id) WHERE admin_role IS NOT NULL;

        CREATE TABLE identity_groups (
            tenant_id      TEXT NOT NULL,
            id             TEXT NOT NULL,
            name           TEXT NOT NULL,
            group_type     TEXT NOT NULL DEFAULT 'SECURITY',
            description    TEXT NOT NULL DEFAULT '',
            created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
            deleted_at     TIMESTAMPTZ,
            last_synced_at TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX identity_groups_name ON identity_groups (tenant_id, name);

        -- user -> group (DIRECT or NESTED, as ScaiKey reports it) and group -> group nesting edges (DIRECT).
        CREATE TABLE identity_memberships (
            tenant_id       TEXT NOT NULL,
            group_id        TEXT NOT NULL,
            member_type     TEXT NOT NULL CHECK (member_type IN ('user', 'group')),
            member_id       TEXT NOT NULL,
            membership_type TEXT NOT NULL DEFAULT 'DIRECT' CHECK (membership_type IN ('DIRECT', 'NESTED')),
            via_group_id    TEXT,
            added_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            deleted_at      TIMESTAMPTZ,
            last_synced_at  TIMESTAMPTZ,
            PRIMARY KEY (tenant_id, group_id, member_type, member_id)
        );
        CREATE INDEX identity_memberships_member ON identity_memberships (tenant_id, member_type, member_id);

        -- One row per (sync_id, tenant); a full sweep also has a row with tenant_id '*'.
        CREATE TABLE identity_sync_runs (
            sync_id      TEXT NOT NULL,
            tenant_id    TEXT NOT NULL,
            partner_id   TEXT,
            status       TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
            trigger      TEXT NOT NULL DEFAULT 'manual',
            reason       TEXT,
            requested_by TEXT,
            stats        JSONB NOT NULL DEFAULT '{}'::jsonb,
            error        TEXT,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            started_at   TIMESTAMPTZ,
            finished_at  TIMESTAMPTZ,
            PRIMARY KEY (sync_id, tenant_id)
        );
        CREATE INDEX identity_sync_runs_tenant ON identity_sync_runs (tenant_id, created_at DESC);

        CREATE TABLE scaikey_webhook_events (
            event_id    TEXT PRIMARY KEY,
            event_type  TEXT NOT NULL,
            tenant_id   TEXT,
            handled     BOOLEAN NOT NULL,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX scaikey_webhook_events_received ON scaikey_webhook_events (received_at);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE scaikey_webhook_events; DROP TABLE identity_sync_runs; DROP TABLE identity_memberships;"
        " DROP TABLE identity_groups; DROP TABLE identity_users;"
    )
