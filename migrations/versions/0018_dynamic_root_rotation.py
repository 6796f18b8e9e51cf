"""Dynamic engines: root credential rotation (issue 17). One row per rotation: the new root password sealed
(envelope, AAD bound to tenant, engine and rotation) from before it is set at the source until the new secret
version holding it is committed, so an interrupted rotation can always be rolled forward (docs/dynamic.md).

Revision ID: 0018
Revises: 0017
"""
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE dynamic_root_rotations (
            id           TEXT PRIMARY KEY,
            tenant_id    TEXT NOT NULL,
            engine_id    TEXT NOT NULL REFERENCES dynamic_engines (id) ON DELETE CASCADE,
            status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
            sealed_password BYTEA,
            new_version  INTEGER,
            error        TEXT,
            requested_by TEXT,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            completed_at TIMESTAMPTZ
        );
        CREATE UNIQUE INDEX dynamic_root_rotations_one_pending ON dynamic_root_rotations (engine_id)
            WHERE status = 'pending';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS dynamic_root_rotations")
