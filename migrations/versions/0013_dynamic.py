"""Dynamic credentials (issue 17): engines, roles and leases (docs/dynamic.md).

Every lease is a row: the revoker workflow of its engine (one per engine, the "sharded timer" design) finds
what is due from PostgreSQL alone, so expiry survives a lost Temporal history. A lease stores the generated
username (or access key id), never the password or secret key.

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE dynamic_engines (
            id                TEXT PRIMARY KEY,
            tenant_id         TEXT NOT NULL,
            partner_id        TEXT,
            name              TEXT NOT NULL,
            type              TEXT NOT NULL CHECK (type IN ('database', 'aws')),
            plugin            TEXT,
            config            JSONB NOT NULL DEFAULT '{}'::jsonb,
            default_ttl       TEXT NOT NULL,
            default_ttl_seconds BIGINT NOT NULL,
            max_ttl           TEXT NOT NULL,
            max_ttl_seconds   BIGINT NOT NULL,
            revocation_paused BOOLEAN NOT NULL DEFAULT false,
            connection_status TEXT NOT NULL DEFAULT 'unknown'
                              CHECK (connection_status IN ('connected', 'error', 'unknown')),
            last_checked_at   TIMESTAMPTZ,
            last_error        TEXT,
            revoker_wake_at   TIMESTAMPTZ,
            created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by        TEXT,
            updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            CONSTRAINT dynamic_engines_name UNIQUE (tenant_id, name)
        );

        CREATE TABLE dynamic_roles (
            id          TEXT PRIMARY KEY,
            tenant_id   TEXT NOT NULL,
            engine_id   TEXT NOT NULL REFERENCES dynamic_engines (id) ON DELETE CASCADE,
            name        TEXT NOT NULL,
            config      JSONB NOT NULL DEFAULT '{}'::jsonb,
            default_ttl TEXT,
            max_ttl     TEXT,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by  TEXT,
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            CONSTRAINT dynamic_roles_name UNIQUE (engine_id, name)
        );

        -- status: pending (being created at the target) -> active -> revoking (due, retrying) |
        -- revocation_failed (N failures, still retried) -> revoked (the target confirmed).
        CREATE TABLE dynamic_leases (
            id              TEXT PRIMARY KEY,
            tenant_id       TEXT NOT NULL,
            partner_id      TEXT,
            engine_id       TEXT NOT NULL,
            engine_name     TEXT NOT NULL,
            role_name       TEXT NOT NULL,
            username        TEXT NOT NULL,
            external_id     TEXT,
            status          TEXT NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'active', 'revoking', 'revocation_failed', 'revoked')),
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by      TEXT,
            expires_at      TIMESTAMPTZ NOT NULL,
            max_expires_at  TIMESTAMPTZ NOT NULL,
            renewed_at      TIMESTAMPTZ,
            revoke_reason   TEXT,
            revoke_requested_by TEXT,
            revoked_at      TIMESTAMPTZ,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMPTZ,
            last_error      TEXT
        );
        CREATE INDEX dynamic_leases_tenant ON dynamic_leases (tenant_id, id);
        CREATE INDEX dynamic_leases_due ON dynamic_leases (engine_id, (COALESCE(next_attempt_at, expires_at)))
            WHERE status <> 'revoked';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS dynamic_leases; DROP TABLE IF EXISTS dynamic_roles;"
               " DROP TABLE IF EXISTS dynamic_engines;")
