-- Webhook subscriptions and their durable outbox. A delivery row is
-- written in the same transaction as the event it carries, so a change
-- and its notification commit or roll back together.

CREATE TABLE webhooks (
    id                 INTEGER PRIMARY KEY,
    board_id           INTEGER NOT NULL REFERENCES boards (id),
    url                TEXT NOT NULL,
    -- JSON array of event types; [] means every type.
    events             TEXT NOT NULL DEFAULT '[]',
    -- The signing key must be recoverable to sign, so it is stored as is;
    -- it never leaves the server except in the create/rotate response.
    secret             TEXT NOT NULL,
    -- After a rotation the old key keeps signing until this time.
    previous_secret    TEXT,
    previous_until     INTEGER,
    enabled            INTEGER NOT NULL DEFAULT 1,
    disabled_reason    TEXT,
    -- Start of the current run of failed attempts (NULL when healthy).
    failing_since      INTEGER,
    created_by         INTEGER REFERENCES workers (id),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX webhooks_by_board ON webhooks (board_id) WHERE enabled = 1;

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    webhook_id       INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         INTEGER NOT NULL,
    -- The Standard Webhooks `webhook-id`: the same on every attempt.
    message_id       TEXT NOT NULL UNIQUE,
    type             TEXT NOT NULL,
    -- The exact body sent on every attempt.
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    last_status      INTEGER,
    last_error       TEXT
);
CREATE INDEX deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY,
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  INTEGER NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    -- The first bytes of the receiver's answer, for debugging.
    response      TEXT
);
CREATE INDEX attempts_by_delivery ON webhook_attempts (delivery_id, id);
