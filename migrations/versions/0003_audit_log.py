"""Audit log (append-only, per-tenant hash chain sealed shortly after commit), chain heads with the pruning
checkpoint, and per-tenant rate-limit overrides.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE audit_log (
            seq            BIGSERIAL PRIMARY KEY,          -- insertion order (not the chain order)
            id             TEXT NOT NULL UNIQUE,           -- log_...
            tenant_id      TEXT NOT NULL,
            partner_id     TEXT,
            ts             TIMESTAMPTZ NOT NULL,           -- exposed as "timestamp" (microseconds)
            request_id     TEXT,
            correlation_id TEXT,
            identity_id    TEXT NOT NULL,
            identity_type  TEXT NOT NULL,
            action         TEXT NOT NULL,
            resource_type  TEXT,
            resource_id    TEXT,
            secret_path    TEXT,
            permission     TEXT,
            version        INTEGER,
            success        BOOLEAN NOT NULL,
            error_code     TEXT,
            source_ip      TEXT,
            user_agent     TEXT,
            duration_ms    DOUBLE PRECISION,
            extra_data     JSONB NOT NULL DEFAULT '{}'::jsonb,
            -- hash chain, filled by the sealer: hash = sha256(prev_hash || "\\n" || canonical_entry)
            chain_seq      BIGINT,
            prev_hash      TEXT,
            hash           TEXT,
            sealed_at      TIMESTAMPTZ
        );
        CREATE INDEX audit_tenant_seq ON audit_log (tenant_id, seq DESC);
        CREATE INDEX audit_tenant_ts ON audit_log (tenant_id, ts);
        CREATE INDEX audit_tenant_identity ON audit_log (tenant_id, identity_id, seq DESC);
        CREATE INDEX audit_tenant_path ON audit_log (tenant_id, secret_path text_pattern_ops, seq DESC)
            WHERE secret_path IS NOT NULL;
        CREATE INDEX audit_tenant_request ON audit_log (tenant_id, request_id);
        CREATE UNIQUE INDEX audit_tenant_chain ON audit_log (tenant_id, chain_seq) WHERE chain_seq IS NOT NULL;
        CREATE INDEX audit_unsealed ON audit_log (seq) WHERE hash IS NULL;

        -- The chain head per tenant, and the checkpoint left by retention pruning (the hash of the last
        -- pruned entry), so the remaining chain still verifies from a known starting point.
        CREATE TABLE audit_chain_heads (
            tenant_id          TEXT PRIMARY KEY,
            head_chain_seq     BIGINT NOT NULL DEFAULT 0,
            head_hash          TEXT NOT NULL,
            pruned_through_seq BIGINT NOT NULL DEFAULT 0,
            pruned_hash        TEXT NOT NULL,
            updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        -- Append-only: rows may be sealed once (chain columns only, while unsealed) and deleted only by the
        -- retention sweeper, which sets scaivault.audit_prune for its transaction. A superuser can bypass a
        -- trigger; the hash chain is what detects that.
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                IF coalesce(current_setting('scaivault.audit_prune', true), '') = 'on' THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION 'audit_log is append-only (DELETE refused)';
            END IF;
            IF OLD.hash IS NULL AND NEW.hash IS NOT NULL
               AND (NEW.seq, NEW.id, NEW.tenant_id, NEW.partner_id, NEW.ts, NEW.request_id, NEW.correlation_id,
                    NEW.identity_id, NEW.identity_type, NEW.action, NEW.resource_type, NEW.resource_id,
                    NEW.secret_path, NEW.permission, NEW.version, NEW.success, NEW.error_code, NEW.source_ip,
                    NEW.user_agent, NEW.duration_ms, NEW.extra_data)
                   IS NOT DISTINCT FROM
                   (OLD.seq, OLD.id, OLD.tenant_id, OLD.partner_id, OLD.ts, OLD.request_id, OLD.correlation_id,
                    OLD.identity_id, OLD.identity_type, OLD.action, OLD.resource_type, OLD.resource_id,
                    OLD.secret_path, OLD.permission, OLD.version, OLD.success, OLD.error_code, OLD.source_ip,
                    OLD.user_agent, OLD.duration_ms, OLD.extra_data) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'audit_log is append-only (UPDATE refused)';
        END $$;
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

        CREATE TABLE rate_limit_overrides (
            tenant_id        TEXT NOT NULL,
            category         TEXT NOT NULL,
            limit_per_minute INTEGER NOT NULL CHECK (limit_per_minute > 0),
            updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_by       TEXT,
            PRIMARY KEY (tenant_id, category)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE rate_limit_overrides; DROP TABLE audit_chain_heads; DROP TABLE audit_log;"
        " DROP FUNCTION audit_log_append_only();"
    )
