-- Ticket store, SQLite flavour. Instants are Unix seconds (UTC) in INTEGER columns.

CREATE TABLE calendar_versions (
    id          INTEGER PRIMARY KEY,
    hash        TEXT    NOT NULL UNIQUE,
    spec        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE policy_versions (
    id          INTEGER PRIMARY KEY,
    hash        TEXT    NOT NULL UNIQUE,
    spec        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tickets (
    id                INTEGER PRIMARY KEY,
    number            TEXT    NOT NULL UNIQUE,
    office            TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    priority          TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    step              TEXT,
    step_text         TEXT,
    citizen           TEXT    NOT NULL,
    fiscal_code       TEXT,
    received_at       INTEGER NOT NULL,
    closed_at         INTEGER,
    waiting_since     INTEGER,
    policy_version    INTEGER NOT NULL REFERENCES policy_versions (id),
    calendar_version  INTEGER NOT NULL REFERENCES calendar_versions (id),
    create_hash       TEXT    NOT NULL,
    sla_due_at        INTEGER,
    sla_state         TEXT    NOT NULL,
    sla_elapsed_s     INTEGER NOT NULL,
    sla_computed_at   INTEGER NOT NULL,
    next_check_at     INTEGER,
    last_event_at     INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX tickets_next_check ON tickets (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX tickets_state ON tickets (sla_state, office, id) WHERE closed_at IS NULL;
CREATE INDEX tickets_fiscal_code ON tickets (fiscal_code) WHERE fiscal_code IS NOT NULL;

CREATE TABLE ticket_events (
    id               INTEGER PRIMARY KEY,
    ticket_id        INTEGER NOT NULL REFERENCES tickets (id),
    kind             TEXT    NOT NULL,
    occurred_at      INTEGER NOT NULL,
    source           TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    content_hash     TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    recorded_at      INTEGER NOT NULL,
    UNIQUE (ticket_id, idempotency_key)
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

-- Direct writes: a CRM that can only write SQL inserts here; Messo validates each row on its
-- next poll and marks it accepted or rejected (with the reason).
CREATE TABLE crm_inbox (
    id               INTEGER PRIMARY KEY,
    kind             TEXT    NOT NULL,
    ticket_number    TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    idempotency_key  TEXT,
    inserted_at      INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),
    status           TEXT    NOT NULL DEFAULT 'pending',
    reason           TEXT,
    processed_at     INTEGER
);
CREATE INDEX crm_inbox_pending ON crm_inbox (id) WHERE status = 'pending';

CREATE TABLE idempotency_keys (
    principal     TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);
