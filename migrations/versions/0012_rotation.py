"""Rotation and expiry (issue 14): rotation policies, per-secret assignments (the cycle anchor every timer is
recomputed from), once-per-cycle marks (threshold events fire exactly once), rotation history, the rotation
idempotency key stored with the version it produced, and once-per-threshold expiry notification marks.

Everything a rotation workflow needs to resume lives here, so every timer is recoverable from PostgreSQL alone
(lifecycle.md §7).

Revision ID: 0012
Revises: 0011
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE rotation_policies (
            id               TEXT PRIMARY KEY,
            tenant_id        TEXT NOT NULL,
            name             TEXT NOT NULL,
            description      TEXT NOT NULL DEFAULT '',
            interval         TEXT NOT NULL,
            interval_seconds BIGINT NOT NULL CHECK (interval_seconds > 0),
            grace_period     TEXT NOT NULL,
            grace_seconds    BIGINT NOT NULL CHECK (grace_seconds >= 0),
            warn_before      TEXT NOT NULL DEFAULT '',
            auto_generate    BOOLEAN NOT NULL DEFAULT false,
            secret_policy_id TEXT,
            webhook_ids      JSONB NOT NULL DEFAULT '[]'::jsonb,
            is_active        BOOLEAN NOT NULL DEFAULT true,
            created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by       TEXT,
            updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            CONSTRAINT rotation_policies_name UNIQUE (tenant_id, name)
        );

        -- One row per attached secret (tenant secrets only). anchor_at = last rotation (or attach time);
        -- cycle counts rotations; a rotation advances both in the transaction that writes the new version.
        CREATE TABLE rotation_assignments (
            secret_id       BIGINT PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
            tenant_id       TEXT NOT NULL,
            policy_id       TEXT NOT NULL REFERENCES rotation_policies (id) ON DELETE CASCADE,
            assigned_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
            anchor_at       TIMESTAMPTZ NOT NULL,
            cycle           INTEGER NOT NULL DEFAULT 1,
            status          TEXT NOT NULL DEFAULT 'scheduled'
                            CHECK (status IN ('scheduled', 'due', 'overdue', 'failed')),
            last_rotated_at TIMESTAMPTZ,
            last_error      JSONB,
            workflow_started BOOLEAN NOT NULL DEFAULT false
        );
        CREATE INDEX rotation_assignments_policy ON rotation_assignments (policy_id);
        CREATE INDEX rotation_assignments_unstarted ON rotation_assignments (assigned_at) WHERE NOT workflow_started;

        -- A mark is written in the same transaction as the event it stands for: warn_before thresholds,
        -- 'due', 'overdue', 'failed' each fire at most once per cycle, however often a worker retries.
        CREATE TABLE rotation_marks (
            secret_id  BIGINT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
            cycle      INTEGER NOT NULL,
            mark       TEXT NOT NULL,
            emitted    BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (secret_id, cycle, mark)
        );

        CREATE TABLE rotation_history (
            id                TEXT PRIMARY KEY,
            tenant_id         TEXT NOT NULL,
            policy_id         TEXT NOT NULL,
            secret_id         BIGINT,
            secret_path       TEXT NOT NULL,
            cycle             INTEGER NOT NULL,
            status            TEXT NOT NULL CHECK (status IN ('pending', 'success', 'failed')),
            trigger           TEXT NOT NULL,
            old_version       INTEGER,
            new_version       INTEGER,
            auto_generated    BOOLEAN NOT NULL DEFAULT false,
            started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
            completed_at      TIMESTAMPTZ,
            grace_period_ends TIMESTAMPTZ,
            error             JSONB,
            attempt           INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX rotation_history_policy ON rotation_history (tenant_id, policy_id, id);

        -- The rotation idempotency key (cycle) of the version a rotation wrote.
        ALTER TABLE secret_versions ADD COLUMN rotation_key TEXT;
        CREATE UNIQUE INDEX secret_versions_rotation_key ON secret_versions (secret_id, rotation_key)
            WHERE rotation_key IS NOT NULL;

        CREATE TABLE secret_expiry_marks (
            secret_id  BIGINT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
            expires_at TIMESTAMPTZ NOT NULL,
            mark       TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (secret_id, expires_at, mark)
        );
        CREATE INDEX secrets_expiry_sweep ON secrets (expires_at)
            WHERE expires_at IS NOT NULL AND deleted_at IS NULL AND scope = 'tenant';
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX IF EXISTS secrets_expiry_sweep; DROP TABLE secret_expiry_marks; DROP INDEX IF EXISTS secret_versions_rotation_key;"
        " ALTER TABLE secret_versions DROP COLUMN rotation_key; DROP TABLE rotation_history;"
        " DROP TABLE rotation_marks; DROP TABLE rotation_assignments; DROP TABLE rotation_policies;"
    )
