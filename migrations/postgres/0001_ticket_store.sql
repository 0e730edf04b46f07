-- Ticket store, PostgreSQL flavour. Instants are Unix seconds (UTC) in BIGINT columns, the same
-- as on SQLite, so both back ends share every query.

CREATE TABLE calendar_versions (
    id          BIGSERIAL PRIMARY KEY,
    hash        TEXT   NOT NULL UNIQUE,
    spec        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE policy_versions (
    id          BIGSERIAL PRIMARY KEY,
    hash        TEXT   NOT NULL UNIQUE,
    spec        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tickets (
    id                BIGSERIAL PRIMARY KEY,
    number            TEXT   NOT NULL UNIQUE,
    office            TEXT   NOT NULL,
    category          TEXT   NOT NULL,
    priority          TEXT   NOT NULL,
    subject           TEXT   NOT NULL,
    step              TEXT,
    step_text         TEXT,
    citizen           TEXT   NOT NULL,
    fiscal_code       TEXT,
    received_at       BIGINT NOT NULL,
    closed_at         BIGINT,
    waiting_since     BIGINT,
    policy_version    BIGINT NOT NULL REFERENCES policy_versions (id),
    calendar_version  BIGINT NOT NULL REFERENCES calendar_versions (id),
    create_hash       TEXT   NOT NULL,
    sla_due_at        BIGINT,
    sla_state         TEXT   NOT NULL,
    sla_elapsed_s     BIGINT NOT NULL,
    sla_computed_at   BIGINT NOT NULL,
    next_check_at     BIGINT,
    last_event_at     BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX tickets_next_check ON tickets (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX tickets_state ON tickets (sla_state, office, id) WHERE closed_at IS NULL;
CREATE INDEX tickets_fiscal_code ON tickets (fiscal_code) WHERE fiscal_code IS NOT NULL;

CREATE TABLE ticket_events (
    id               BIGSERIAL PRIMARY KEY,
    ticket_id        BIGINT NOT NULL REFERENCES tickets (id),
    kind             TEXT   NOT NULL,
    occurred_at      BIGINT NOT NULL,
    source           TEXT   NOT NULL,
    idempotency_key  TEXT   NOT NULL,
    content_hash     TEXT   NOT NULL,
    data             TEXT   NOT NULL,
    recorded_at      BIGINT NOT NULL,
    UNIQUE (ticket_id, idempotency_key)
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

-- Direct writes: a CRM that can only write SQL inserts here; Messo validates each row on its
-- next poll and marks it accepted or rejected (with the reason).
CREATE TABLE crm_inbox (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT   NOT NULL,
    ticket_number    TEXT   NOT NULL,
    payload          TEXT   NOT NULL,
    idempotency_key  TEXT,
    inserted_at      BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now())::BIGINT),
    status           TEXT   NOT NULL DEFAULT 'pending',
    reason           TEXT,
    processed_at     BIGINT
);
CREATE INDEX crm_inbox_pending ON crm_inbox (id) WHERE status = 'pending';

CREATE TABLE idempotency_keys (
    principal     TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    request_hash  TEXT   NOT NULL,
    status        BIGINT NOT NULL,
    body          TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);
