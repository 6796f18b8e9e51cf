"""Webhooks, their delivery log, subscriptions with a polling buffer, and a post-commit NOTIFY on the outbox.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhooks (
            id                         TEXT PRIMARY KEY,
            tenant_id                  TEXT NOT NULL,
            partner_id                 TEXT,
            kind                       TEXT NOT NULL DEFAULT 'webhook',   -- webhook | subscription
            subscription_id            TEXT,
            name                       TEXT NOT NULL,
            url                        TEXT NOT NULL,
            secret_enc                 BYTEA NOT NULL,
            previous_secret_enc        BYTEA,
            previous_secret_expires_at TIMESTAMPTZ,
            events                     TEXT[] NOT NULL,
            paths                      TEXT[],                             -- globs (subscription webhooks)
            filters                    JSONB NOT NULL DEFAULT '{}'::jsonb,
            enabled                    BOOLEAN NOT NULL DEFAULT true,
            status                     TEXT NOT NULL DEFAULT 'healthy',
            consecutive_failures       INTEGER NOT NULL DEFAULT 0,
            created_by                 TEXT,
            created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);
        CREATE INDEX webhooks_tenant_enabled ON webhooks (tenant_id) WHERE enabled;

        CREATE TABLE webhook_deliveries (
            id              TEXT PRIMARY KEY,
            tenant_id       TEXT NOT NULL,
            webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
            event_id        TEXT NOT NULL,
            event_type      TEXT NOT NULL,
            body            BYTEA NOT NULL,            -- the exact bytes sent on every attempt
            status          TEXT NOT NULL DEFAULT 'pending',   -- pending | success | failed
            attempts        INTEGER NOT NULL DEFAULT 0,
            response_code   INTEGER,
            response_body   TEXT,
            duration_ms     INTEGER,
            error           TEXT,
            next_attempt_at TIMESTAMPTZ,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            delivered_at    TIMESTAMPTZ,
            UNIQUE (webhook_id, event_id)
        );
        CREATE INDEX webhook_deliveries_list ON webhook_deliveries (webhook_id, id DESC);
        CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (webhook_id, updated_at);

        CREATE TABLE subscriptions (
            id              TEXT PRIMARY KEY,
            tenant_id       TEXT NOT NULL,
            partner_id      TEXT,
            identity_id     TEXT NOT NULL,
            name            TEXT NOT NULL,
            paths           TEXT[] NOT NULL,
            events          TEXT[] NOT NULL,
            filters         JSONB NOT NULL DEFAULT '{}'::jsonb,
            delivery_type   TEXT NOT NULL,               -- webhook | polling
            buffer_size     INTEGER NOT NULL DEFAULT 1000,
            webhook_id      TEXT,
            status          TEXT NOT NULL DEFAULT 'active',
            dropped_events  BIGINT NOT NULL DEFAULT 0,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, identity_id, id);
        CREATE INDEX subscriptions_polling ON subscriptions (tenant_id) WHERE delivery_type = 'polling';

        CREATE TABLE subscription_events (
            subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            seq             BIGINT NOT NULL,
            tenant_id       TEXT NOT NULL,
            event_id        TEXT NOT NULL,
            envelope        JSONB NOT NULL,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (subscription_id, seq)
        );
        CREATE INDEX subscription_events_event ON subscription_events (subscription_id, event_id);

        -- Wake the relay right after an outbox row commits (NOTIFY is delivered on commit only).
        CREATE FUNCTION events_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('scaivault_events', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER events_outbox_notify AFTER INSERT ON events
            FOR EACH STATEMENT EXECUTE FUNCTION events_outbox_notify();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS events_outbox_notify ON events;
        DROP FUNCTION IF EXISTS events_outbox_notify();
        DROP TABLE subscription_events;
        DROP TABLE subscriptions;
        DROP TABLE webhook_deliveries;
        DROP TABLE webhooks;
        """
    )
