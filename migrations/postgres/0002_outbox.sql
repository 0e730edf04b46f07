-- Notices owed to citizens and offices. One row per (ticket, kind, key, recipient): the unique key
-- is what makes a restart, a retry, a second instance or a replayed event unable to owe a message
-- twice.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    ticket_id     BIGINT  NOT NULL REFERENCES tickets (id),
    kind          TEXT    NOT NULL,
    dedupe_key    TEXT    NOT NULL,
    recipient     TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    language      TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    not_before    BIGINT  NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending',
    attempts      BIGINT  NOT NULL DEFAULT 0,
    lease_until   BIGINT,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    delivered_at  BIGINT,
    UNIQUE (ticket_id, kind, dedupe_key, recipient)
);
CREATE INDEX outbox_ready ON outbox (not_before) WHERE state IN ('pending', 'retry', 'sending');
