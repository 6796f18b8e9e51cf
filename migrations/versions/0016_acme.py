"""Managed certificates (issue 16): ACME accounts, DNS providers, ACME orders, http-01 tokens served by the API,
and the certificate-record columns ACME and auto-renewal need (``source = 'acme'`` has no internal CA, so
``ca_id`` becomes nullable; ``renewed_from_id``, ``acme_account_id``, ``auto_renew``, ``renew_before``).

Secrets (account keys, DNS credentials) are envelope blobs sealed under the tenant key; never plaintext.

Revision ID: 0016
Revises: 0015
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE acme_accounts (
            id              TEXT PRIMARY KEY,
            tenant_id       TEXT NOT NULL,
            partner_id      TEXT,
            name            TEXT NOT NULL,
            provider        TEXT NOT NULL,
            environment     TEXT NOT NULL,
            directory_url   TEXT NOT NULL,
            email           TEXT,
            account_url     TEXT,
            key_ciphertext  BYTEA NOT NULL,
            status          TEXT NOT NULL DEFAULT 'valid',
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by      TEXT,
            CONSTRAINT acme_accounts_name UNIQUE (tenant_id, name)
        );

        CREATE TABLE dns_providers (
            id                     TEXT PRIMARY KEY,
            tenant_id              TEXT NOT NULL,
            partner_id             TEXT,
            name                   TEXT NOT NULL,
            provider_type          TEXT NOT NULL,
            config                 JSONB NOT NULL DEFAULT '{}'::jsonb,
            managed_zones          JSONB NOT NULL DEFAULT '[]'::jsonb,
            credentials_ciphertext BYTEA NOT NULL,
            is_active              BOOLEAN NOT NULL DEFAULT true,
            created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by             TEXT,
            CONSTRAINT dns_providers_name UNIQUE (tenant_id, name)
        );

        CREATE TABLE acme_orders (
            id               TEXT PRIMARY KEY,
            tenant_id        TEXT NOT NULL,
            partner_id       TEXT,
            account_id       TEXT NOT NULL REFERENCES acme_accounts (id),
            dns_provider_id  TEXT REFERENCES dns_providers (id),
            domains          JSONB NOT NULL,
            challenge_type   TEXT NOT NULL CHECK (challenge_type IN ('http-01', 'dns-01')),
            key_type         TEXT NOT NULL,
            status           TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'valid', 'invalid')),
            challenges       JSONB NOT NULL DEFAULT '[]'::jsonb,
            error            JSONB,
            tries            INTEGER NOT NULL DEFAULT 0,
            certificate_id   TEXT,
            managed_id       TEXT NOT NULL,
            renewal_of_id    TEXT,
            auto_renew       BOOLEAN NOT NULL DEFAULT true,
            renew_before     TEXT,
            created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by       TEXT
        );
        CREATE INDEX acme_orders_tenant ON acme_orders (tenant_id, id);

        CREATE TABLE acme_http_tokens (
            token              TEXT PRIMARY KEY,
            order_id           TEXT NOT NULL REFERENCES acme_orders (id) ON DELETE CASCADE,
            key_authorization  TEXT NOT NULL,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        ALTER TABLE pki_certificates ALTER COLUMN ca_id DROP NOT NULL;
        ALTER TABLE pki_certificates DROP CONSTRAINT IF EXISTS pki_certificates_source_check;
        ALTER TABLE pki_certificates ADD CONSTRAINT pki_certificates_source_check
            CHECK (source IN ('issue', 'sign', 'csr', 'acme'));
        ALTER TABLE pki_certificates ADD COLUMN renewed_from_id TEXT;
        ALTER TABLE pki_certificates ADD COLUMN acme_account_id TEXT;
        ALTER TABLE pki_certificates ADD COLUMN acme_order_id TEXT;
        ALTER TABLE pki_certificates ADD COLUMN partner_id TEXT;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM pki_expiry_notices WHERE certificate_id IN (SELECT id FROM pki_certificates WHERE source = 'acme');
        DELETE FROM pki_certificates WHERE source = 'acme';
        ALTER TABLE pki_certificates DROP COLUMN partner_id;
        ALTER TABLE pki_certificates DROP COLUMN acme_order_id;
        ALTER TABLE pki_certificates DROP COLUMN acme_account_id;
        ALTER TABLE pki_certificates DROP COLUMN renewed_from_id;
        ALTER TABLE pki_certificates DROP CONSTRAINT pki_certificates_source_check;
        ALTER TABLE pki_certificates ADD CONSTRAINT pki_certificates_source_check
            CHECK (source IN ('issue', 'sign', 'csr'));
        ALTER TABLE pki_certificates ALTER COLUMN ca_id SET NOT NULL;
        DROP TABLE acme_http_tokens;
        DROP TABLE acme_orders;
        DROP TABLE dns_providers;
        DROP TABLE acme_accounts;
        """
    )
