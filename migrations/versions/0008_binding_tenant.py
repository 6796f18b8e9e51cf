"""Policy bindings belong to one tenant: unique per (policy, tenant, identity), not per (policy, identity).

A partner-scope policy applies in every tenant of its partner, but each of its bindings names an identity of the
tenant it was created in (``policy_bindings.tenant_id``); two tenants may each bind their own ``group:ops``.
Evaluation only ever matches a binding against callers acting in that tenant (issue 11 item 7).

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE policy_bindings DROP CONSTRAINT policy_bindings_policy_id_identity_id_key;
        ALTER TABLE policy_bindings ADD CONSTRAINT policy_bindings_policy_tenant_identity_key
            UNIQUE (policy_id, tenant_id, identity_id);
        """
    )


def downgrade() -> None:
    # Fails (unique violation) while two tenants bind the same identity name to one partner policy: remove the
    # duplicates first; the old constraint cannot express per-tenant bindings.
    op.execute(
        """
        ALTER TABLE policy_bindings DROP CONSTRAINT policy_bindings_policy_tenant_identity_key;
        ALTER TABLE policy_bindings ADD CONSTRAINT policy_bindings_policy_id_identity_id_key
            UNIQUE (policy_id, identity_id);
        """
    )
