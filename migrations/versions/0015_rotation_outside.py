"""Rotation through an outside system (issue 14 item 4): a policy may name a rotation webhook (the outside system
that creates the new credential), and the saga's pending value waits, sealed, in ``rotation_staged`` between
"create" and "promote".

Revision ID: 0015
Revises: 0014
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE rotation_policies ADD COLUMN rotation_webhook_id TEXT;
        CREATE TABLE rotation_staged (
            secret_id  BIGINT PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
            cycle      INTEGER NOT NULL,
            ciphertext BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rotation_staged; ALTER TABLE rotation_policies DROP COLUMN rotation_webhook_id;")
