-- Notices owed to citizens and offices. One row per (ticket, kind, key, recipient): the unique key
-- is what makes a restart, a retry, a second instance or a replayed event unable to owe a message
-- twice.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    ticket_id     INTEGER NOT NULL REFERENCES tickets (id),
    kind          TEXT    NOT NULL,
    dedupe_key    TEXT    NOT NULL,
    recipient     TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    language      TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    not_before    INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_until   INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    delivered_at  INTEGER,
    UNIQUE (ticket_id, kind, dedupe_key, recipient)
);
CREATE INDEX outbox_ready ON outbox (not_before) WHERE state IN ('pending', 'retry', 'sending');
