"""Internal PKI (issue 15, spec lifecycle.md §3): CAs, roles, issued certificates, CSRs, trust anchors, CRLs and the
exactly-once ledger of certificate.expiring notices.

Private keys (CA keys, and leaf keys of roles with ``store_private_keys``) are envelope blobs sealed under the
tenant key with AAD bound to the owning row (services/pki/keys.py); nothing here holds a key in the clear.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pki_cas (
            id                 TEXT PRIMARY KEY,
            tenant_id          TEXT NOT NULL,
            partner_id         TEXT NOT NULL,
            name               TEXT NOT NULL,
            common_name        TEXT NOT NULL,
            ca_type            TEXT NOT NULL CHECK (ca_type IN ('root', 'intermediate')),
            parent_ca_id       TEXT REFERENCES pki_cas (id),
            key_type           TEXT NOT NULL CHECK (key_type IN ('rsa', 'ec')),
            key_size           INTEGER NOT NULL,
            serial_number      TEXT NOT NULL,
            certificate_pem    TEXT NOT NULL,
            key_ciphertext     BYTEA NOT NULL,
            valid_from         TIMESTAMPTZ NOT NULL,
            valid_until        TIMESTAMPTZ NOT NULL,
            revoked_at         TIMESTAMPTZ,
            revocation_reason  TEXT,
            certificates_issued BIGINT NOT NULL DEFAULT 0,
            crl_number         BIGINT NOT NULL DEFAULT 0,
            crl_der            BYTEA,
            crl_this_update    TIMESTAMPTZ,
            crl_next_update    TIMESTAMPTZ,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by         TEXT,
            CONSTRAINT pki_cas_tenant_name UNIQUE (tenant_id, name),
            CONSTRAINT pki_cas_parent CHECK ((ca_type = 'root') = (parent_ca_id IS NULL))
        );
        CREATE INDEX pki_cas_crl_due ON pki_cas (crl_next_update);

        CREATE TABLE pki_roles (
            id          TEXT PRIMARY KEY,
            tenant_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            ca_id       TEXT NOT NULL REFERENCES pki_cas (id),
            config      JSONB NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by  TEXT,
            CONSTRAINT pki_roles_tenant_name UNIQUE (tenant_id, name)
        );

        CREATE TABLE pki_certificates (
            id                 TEXT PRIMARY KEY,
            tenant_id          TEXT NOT NULL,
            ca_id              TEXT NOT NULL REFERENCES pki_cas (id),
            role_name          TEXT,
            source             TEXT NOT NULL CHECK (source IN ('issue', 'sign', 'csr')),
            serial_number      TEXT NOT NULL,
            common_name        TEXT NOT NULL,
            alt_names          JSONB NOT NULL DEFAULT '[]'::jsonb,
            ip_sans            JSONB NOT NULL DEFAULT '[]'::jsonb,
            key_type           TEXT NOT NULL,
            key_bits           INTEGER NOT NULL,
            certificate_pem    TEXT NOT NULL,
            key_ciphertext     BYTEA,
            not_before         TIMESTAMPTZ NOT NULL,
            not_after          TIMESTAMPTZ NOT NULL,
            revoked_at         TIMESTAMPTZ,
            revocation_reason  TEXT,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by         TEXT,
            CONSTRAINT pki_certificates_serial UNIQUE (ca_id, serial_number)
        );
        CREATE INDEX pki_certificates_tenant ON pki_certificates (tenant_id, id);
        CREATE INDEX pki_certificates_expiry ON pki_certificates (not_after) WHERE revoked_at IS NULL;
        CREATE INDEX pki_certificates_revoked ON pki_certificates (ca_id) WHERE revoked_at IS NOT NULL;

        CREATE TABLE pki_csrs (
            id              TEXT PRIMARY KEY,
            tenant_id       TEXT NOT NULL,
            role_name       TEXT NOT NULL,
            csr_pem         TEXT NOT NULL,
            common_name     TEXT NOT NULL,
            names           JSONB NOT NULL DEFAULT '[]'::jsonb,
            ip_sans         JSONB NOT NULL DEFAULT '[]'::jsonb,
            ttl             TEXT,
            status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
            requested_by    TEXT,
            decided_by      TEXT,
            decided_at      TIMESTAMPTZ,
            decision_reason TEXT,
            certificate_id  TEXT REFERENCES pki_certificates (id),
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX pki_csrs_tenant ON pki_csrs (tenant_id, id);

        CREATE TABLE pki_trust_anchors (
            id                 TEXT PRIMARY KEY,
            tenant_id          TEXT NOT NULL,
            name               TEXT NOT NULL,
            certificate_pem    TEXT NOT NULL,
            subject            TEXT NOT NULL,
            issuer             TEXT NOT NULL,
            fingerprint_sha256 TEXT NOT NULL,
            not_before         TIMESTAMPTZ NOT NULL,
            not_after          TIMESTAMPTZ NOT NULL,
            created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_by         TEXT,
            CONSTRAINT pki_trust_anchors_name UNIQUE (tenant_id, name),
            CONSTRAINT pki_trust_anchors_fingerprint UNIQUE (tenant_id, fingerprint_sha256)
        );

        -- one row per (certificate, threshold) whose certificate.expiring event was emitted: the event and this
        -- row commit together, so a threshold fires exactly once however often the sweep runs.
        CREATE TABLE pki_expiry_notices (
            certificate_id  TEXT NOT NULL REFERENCES pki_certificates (id) ON DELETE CASCADE,
            threshold_days  INTEGER NOT NULL,
            emitted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (certificate_id, threshold_days)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS pki_expiry_notices; DROP TABLE IF EXISTS pki_trust_anchors;"
        " DROP TABLE IF EXISTS pki_csrs; DROP TABLE IF EXISTS pki_certificates; DROP TABLE IF EXISTS pki_roles;"
        " DROP TABLE IF EXISTS pki_cas"
    )
