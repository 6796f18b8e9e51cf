"""Secrets: wrapped partner/tenant keys, secrets and their append-only, envelope-encrypted versions.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Key hierarchy rows (crypto/keyring.py KeyStore). Each insert commits on its own.
        CREATE TABLE partner_keys (
            partner_id  TEXT NOT NULL,
            version     INTEGER NOT NULL CHECK (version > 0),
            wrapped     BYTEA NOT NULL,
            kms_key_id  TEXT NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            rewrapped_at TIMESTAMPTZ,
            PRIMARY KEY (partner_id, version)
        );
        CREATE TABLE tenant_keys (
            tenant_id   TEXT NOT NULL,
            version     INTEGER NOT NULL CHECK (version > 0),
            wrapped     BYTEA NOT NULL,
            kms_key_id  TEXT NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, version)
        );

        -- One row per (owner, path). scope='tenant': owner_id is the tenant id (tenant_id = owner_id);
        -- scope='partner': owner_id is the partner id and tenant_id is NULL (partner-wide secret).
        CREATE TABLE secrets (
            id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            scope              TEXT NOT NULL CHECK (scope IN ('tenant', 'partner')),
            owner_id           TEXT NOT NULL,
            tenant_id          TEXT,
            partner_id         TEXT NOT NULL,
            path               TEXT COLLATE "C" NOT NULL,
            secret_type        TEXT NOT NULL,
            metadata           JSONB NOT NULL DEFAULT '{}'::jsonb,
            current_version    INTEGER NOT NULL,
            max_versions       INTEGER,
            expires_at         TIMESTAMPTZ,
            rotation_policy_id TEXT,
            secret_policy_id   TEXT,
            notify_before      TEXT,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by         TEXT,
            updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_by         TEXT,
            last_accessed_at   TIMESTAMPTZ,
            deleted_at         TIMESTAMPTZ,
            deleted_by         TEXT,
            recoverable_until  TIMESTAMPTZ,
            CONSTRAINT secrets_owner_path UNIQUE (scope, owner_id, path),
            CONSTRAINT secrets_tenant_matches CHECK (
                (scope = 'tenant' AND tenant_id = owner_id) OR (scope = 'partner' AND tenant_id IS NULL))
        );
        CREATE INDEX secrets_expiring ON secrets (scope, owner_id, expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX secrets_recoverable ON secrets (recoverable_until) WHERE deleted_at IS NOT NULL;
        CREATE INDEX secrets_tags ON secrets USING gin ((metadata -> 'tags'));
        CREATE INDEX secrets_rotation_policy ON secrets (rotation_policy_id) WHERE rotation_policy_id IS NOT NULL;

        -- Append-only versions; ciphertext is an envelope blob whose AAD binds (scope, owner, path, version).
        -- destroyed versions keep their row (history) but lose the ciphertext.
        CREATE TABLE secret_versions (
            secret_id    BIGINT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
            version      INTEGER NOT NULL CHECK (version > 0),
            ciphertext   BYTEA,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by   TEXT,
            expires_at   TIMESTAMPTZ,
            destroyed_at TIMESTAMPTZ,
            destroyed_by TEXT,
            PRIMARY KEY (secret_id, version),
            CONSTRAINT secret_versions_destroyed CHECK ((ciphertext IS NULL) = (destroyed_at IS NOT NULL))
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE secret_versions; DROP TABLE secrets; DROP TABLE tenant_keys; DROP TABLE partner_keys;")
