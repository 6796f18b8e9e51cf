"""Audit log (strictly insert-only), its hash chain in the insert-only side table audit_seals, chain heads with
the pruning checkpoint, and per-tenant rate-limit overrides.

Revision ID: 0003
Revises: 0002

Write cost is the point of this layout (docs/audit.md "Numbers"): every request inserts one audit_log row, so
audit_log carries only the indexes the query API needs, and the sealer never touches audit_log rows again (it
appends one audit_seals row per tenant per pass instead of UPDATing each entry, which was a second, non-HOT
write of every row through every index plus the trigger).
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
            seq            BIGSERIAL PRIMARY KEY,          -- insertion order = chain order (see audit/sealer.py)
            id             TEXT NOT NULL,                  -- log_<ULID>; unique by construction (no index: the
                                                           -- group commit uses COPY and never blindly re-sends)
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
            extra_data     JSONB NOT NULL DEFAULT '{}'::jsonb
        );
        -- Indexes: each one is paid on every insert (bench/audit_bench.py --index-costs), so only these:
        -- * PRIMARY KEY (seq): the sealer reads the settled range seq > watermark in seq order.
        -- * (tenant_id, seq DESC): every query is tenant-scoped and lists newest first with a seq cursor;
        --   also the verifier's walk of one tenant's entries in seq order. Low-cardinality filters (action,
        --   success, identity_type, source_ip) ride on it: newest-first with a LIMIT stops early.
        CREATE INDEX audit_tenant_seq ON audit_log (tenant_id, seq DESC);
        -- * (tenant_id, ts): from/to windows and GET /v1/audit/summary (default last 30 days) would otherwise
        --   read the tenant's whole log (up to the 7-year retention) to find one window.
        CREATE INDEX audit_tenant_ts ON audit_log (tenant_id, ts);
        -- * GET /v1/audit/identities/{id} (trail + 30-day summary + every path touched, for offboarding) and
        --   the identity_id filter: one identity is a small share of a tenant's log.
        CREATE INDEX audit_tenant_identity ON audit_log (tenant_id, identity_id, seq DESC);
        -- * GET /v1/audit/secrets/{path} (trail + summary) and the path_prefix filter (text_pattern_ops serves
        --   both = and LIKE 'prefix%'); partial: entries without a path (whoami, token, audit queries) skip it.
        CREATE INDEX audit_tenant_path ON audit_log (tenant_id, secret_path text_pattern_ops, seq DESC)
            WHERE secret_path IS NOT NULL;
        -- Dropped on purpose: UNIQUE (id) (nothing looks entries up by id; see the sink for idempotency),
        -- (tenant_id, request_id) (a forensic lookup: combine request_id with from/to to bound it), the
        -- chain columns and their indexes (the chain lives in audit_seals), and "hash IS NULL" (the sealer
        -- finds unsealed entries as seq > the sealed watermark).

        -- The chain: one block per tenant per sealing pass, listing that pass's entries in seq order with
        -- the SHA-256 digest of each entry's canonical form. hash = SHA-256(prev_hash, tenant, block_no,
        -- first_chain_seq, (seq, id, digest)...) and prev_hash = the previous block's hash (see audit/chain.py).
        CREATE TABLE audit_seals (
            tenant_id       TEXT NOT NULL,
            block_no        BIGINT NOT NULL,               -- 1, 2, 3 ... per tenant
            first_chain_seq BIGINT NOT NULL,               -- chain position of log_seqs[1]
            last_chain_seq  BIGINT NOT NULL,
            log_seqs        BIGINT[] NOT NULL,             -- audit_log.seq, ascending
            log_ids         TEXT[] NOT NULL,               -- audit_log.id (names a deleted entry)
            digests         BYTEA[] NOT NULL,              -- SHA-256(canonical entry), 32 bytes each
            last_ts         TIMESTAMPTZ NOT NULL,          -- newest entry ts (retention pruning)
            prev_hash       TEXT NOT NULL,
            hash            TEXT NOT NULL,
            sealed_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, block_no)
        );

        -- The chain head per tenant, and the checkpoint left by retention pruning (the hash of the last
        -- pruned block), so the remaining chain still verifies from a known starting point.
        -- last_log_seq: the newest sealed entry; max(last_log_seq) is the global sealed watermark.
        CREATE TABLE audit_chain_heads (
            tenant_id                TEXT PRIMARY KEY,
            head_block_no            BIGINT NOT NULL DEFAULT 0,
            head_chain_seq           BIGINT NOT NULL DEFAULT 0,
            head_hash                TEXT NOT NULL,
            last_log_seq             BIGINT NOT NULL DEFAULT 0,
            pruned_through_block     BIGINT NOT NULL DEFAULT 0,
            pruned_through_chain_seq BIGINT NOT NULL DEFAULT 0,
            pruned_through_log_seq   BIGINT NOT NULL DEFAULT 0,
            pruned_hash              TEXT NOT NULL,
            updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX audit_heads_last_log_seq ON audit_chain_heads (last_log_seq);

        -- Insert-only: UPDATE is always refused; DELETE only when the transaction set scaivault.audit_prune
        -- (the retention pruner, audit/sealer.py prune_once); TRUNCATE always refused. A superuser can bypass
        -- a trigger; the chain is what detects that.
        CREATE FUNCTION audit_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND coalesce(current_setting('scaivault.audit_prune', true), '') = 'on' THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '% is insert-only (% refused)', TG_TABLE_NAME, TG_OP;
        END $$;
        CREATE TRIGGER audit_log_insert_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_insert_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_insert_only();
        CREATE TRIGGER audit_seals_insert_only BEFORE UPDATE OR DELETE ON audit_seals
            FOR EACH ROW EXECUTE FUNCTION audit_insert_only();
        CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
            FOR EACH STATEMENT EXECUTE FUNCTION audit_insert_only();

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
        "DROP TABLE rate_limit_overrides; DROP TABLE audit_chain_heads; DROP TABLE audit_seals;"
        " DROP TABLE audit_log; DROP FUNCTION audit_insert_only();"
    )
