"""Federation (issue 18): federated backends, the per-path sync ledger (what the last sync saw remotely and
wrote locally: the change-detection and conflict baseline, and what makes a resumed sync write nothing twice),
and conflicts (a path written locally since the last sync with a different value than the remote).

Revision ID: 0014
Revises: 0013
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE federation_backends (
            id                     TEXT PRIMARY KEY,
            tenant_id              TEXT NOT NULL,
            partner_id             TEXT,
            name                   TEXT NOT NULL,
            type                   TEXT NOT NULL,
            mode                   TEXT NOT NULL CHECK (mode IN ('proxy', 'sync')),
            config                 JSONB NOT NULL,
            path_mapping           JSONB NOT NULL,
            sync_interval          TEXT,
            sync_interval_seconds  INTEGER,
            health                 TEXT NOT NULL DEFAULT 'unknown',
            last_sync_at           TIMESTAMPTZ,
            last_success_at        TIMESTAMPTZ,
            last_sync_duration_ms  INTEGER,
            secrets_synced         INTEGER NOT NULL DEFAULT 0,
            last_counts            JSONB NOT NULL DEFAULT '{}'::jsonb,
            last_error             TEXT,
            created_by             TEXT,
            created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, name)
        );
        CREATE INDEX federation_backends_tenant ON federation_backends (tenant_id, id);

        CREATE TABLE federation_items (
            backend_id      TEXT NOT NULL REFERENCES federation_backends (id) ON DELETE CASCADE,
            path            TEXT NOT NULL,
            remote_path     TEXT NOT NULL,
            remote_version  TEXT,
            local_version   INTEGER,
            remote_deleted  BOOLEAN NOT NULL DEFAULT false,
            synced_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (backend_id, path)
        );

        CREATE TABLE federation_conflicts (
            id                 TEXT PRIMARY KEY,
            tenant_id          TEXT NOT NULL,
            backend_id         TEXT NOT NULL REFERENCES federation_backends (id) ON DELETE CASCADE,
            path               TEXT NOT NULL,
            backend_path       TEXT NOT NULL,
            local_version      INTEGER,
            remote_version_id  TEXT,
            detected_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            resolution         TEXT CHECK (resolution IN ('local', 'remote')),
            resolved_at        TIMESTAMPTZ,
            resolved_by        TEXT
        );
        CREATE UNIQUE INDEX federation_conflicts_open ON federation_conflicts (backend_id, path)
            WHERE resolution IS NULL;
        CREATE INDEX federation_conflicts_list ON federation_conflicts (tenant_id, backend_id, id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS federation_conflicts;
        DROP TABLE IF EXISTS federation_items;
        DROP TABLE IF EXISTS federation_backends;
        """
    )
