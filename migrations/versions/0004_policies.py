"""Access policies, their bindings, and value-generation (secret) policies.

Partner-scope policies (scope = 'partner') keep the tenant they were created through in tenant_id (for audit and
events) and apply in every tenant of partner_id. Names are unique per tenant for tenant-scope policies and per
partner for partner-scope ones.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE policies (
            id          TEXT PRIMARY KEY,
            tenant_id   TEXT NOT NULL,
            partner_id  TEXT,
            name        TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            scope       TEXT NOT NULL DEFAULT 'tenant' CHECK (scope IN ('tenant', 'partner')),
            is_active   BOOLEAN NOT NULL DEFAULT true,
            rules       JSONB NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by  TEXT,
            CHECK (scope = 'tenant' OR partner_id IS NOT NULL)
        );
        CREATE UNIQUE INDEX policies_tenant_name ON policies (tenant_id, name) WHERE scope = 'tenant';
        CREATE UNIQUE INDEX policies_partner_name ON policies (partner_id, name) WHERE scope = 'partner';
        CREATE INDEX policies_partner_scope ON policies (partner_id, id) WHERE scope = 'partner';

        CREATE TABLE policy_bindings (
            id            TEXT PRIMARY KEY,
            tenant_id     TEXT NOT NULL,
            policy_id     TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
            identity_type TEXT NOT NULL CHECK (identity_type IN ('user', 'service_account', 'group')),
            identity_id   TEXT NOT NULL,
            expires_at    TIMESTAMPTZ,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by    TEXT,
            UNIQUE (policy_id, identity_id)
        );
        CREATE INDEX policy_bindings_tenant_identity ON policy_bindings (tenant_id, identity_id);

        CREATE TABLE secret_policies (
            id          TEXT PRIMARY KEY,
            tenant_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            policy_type TEXT NOT NULL DEFAULT 'custom',
            description TEXT NOT NULL DEFAULT '',
            fields      JSONB NOT NULL,
            is_active   BOOLEAN NOT NULL DEFAULT true,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by  TEXT,
            UNIQUE (tenant_id, name)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE secret_policies; DROP TABLE policy_bindings; DROP TABLE policies;")
