"""Keyed audit chain (issue 11 item 10): versioned blocks and a MAC'd chain head.

* ``audit_seals.chain_version``: 1 = the unkeyed SHA-256 chain every existing block uses, 2 = HMAC-SHA256 under a
  key derived from AUDIT_HMAC_KEY (never stored in the database). Existing rows become 1; the sealer writes 2.
* ``audit_chain_heads.v1_through_block``: the last block that may be v1 = each tenant's head at this migration
  (0 for tenants that appear later). A v1 block after it is a break (downgrade / forgery).
* ``audit_chain_heads.head_mac``: HMAC over the head, the pruning checkpoint, the sealed watermark and
  ``v1_through_block``; NULL for heads not sealed since this migration (they verify as ``keyed: false``).

Adding columns to the insert-only audit_seals is DDL, not an UPDATE: the insert-only trigger does not fire.
Downgrade: refused while v2 blocks exist (the old code could not verify them and would report every keyed
block as edited); with only v1 blocks it drops the columns.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE audit_seals ADD COLUMN chain_version SMALLINT NOT NULL DEFAULT 1
            CHECK (chain_version IN (1, 2));
        ALTER TABLE audit_seals ALTER COLUMN chain_version DROP DEFAULT;
        ALTER TABLE audit_chain_heads ADD COLUMN v1_through_block BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE audit_chain_heads ADD COLUMN head_mac TEXT;
        """
    )
    # audit_chain_heads is not insert-only (the sealer moves heads); record the legacy boundary.
    op.execute("UPDATE audit_chain_heads SET v1_through_block = head_block_no")


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM audit_seals WHERE chain_version <> 1) THEN
                RAISE EXCEPTION 'audit_seals holds keyed (v2) blocks; the pre-0009 code cannot verify them';
            END IF;
        END $$;
        ALTER TABLE audit_chain_heads DROP COLUMN head_mac;
        ALTER TABLE audit_chain_heads DROP COLUMN v1_through_block;
        ALTER TABLE audit_seals DROP COLUMN chain_version;
        """
    )
