"""Webhook redeliveries requested while Temporal was unavailable are picked up once it is back (issue 12 item 10).

``POST .../deliveries/{id}/redeliver`` re-opens the delivery and stamps ``redeliver_requested_at`` in the same
transaction, then signals-with-start its workflow; only a successful start clears the stamp. When Temporal
cannot take the call (the request answered 503), the stamp stays and the outbox relay's sweep starts the
redelivery once Temporal answers again. The partial index covers just the stamped rows.

Revision ID: 0017
Revises: 0016
"""
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE webhook_deliveries ADD COLUMN redeliver_requested_at timestamptz")
    op.execute("CREATE INDEX webhook_deliveries_redeliver_requested ON webhook_deliveries (redeliver_requested_at)"
               " WHERE redeliver_requested_at IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS webhook_deliveries_redeliver_requested")
    op.execute("ALTER TABLE webhook_deliveries DROP COLUMN IF EXISTS redeliver_requested_at")
