"""Partial index for sync requests still waiting for Temporal (issue 12 item 10).

The identity-sync requeue Schedule looks every minute for ``identity_sync_runs`` rows still ``pending`` (the
request was stored but Temporal could not take it); the table keeps every run as history, so the look-up needs
an index over just the pending rows.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX identity_sync_runs_pending ON identity_sync_runs (created_at) WHERE status = 'pending'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS identity_sync_runs_pending")
