-- Inbound replies and receipts (issue 6). See the SQLite flavour for the comments.
ALTER TABLE outbox ALTER COLUMN ticket_id DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN dlr_state TEXT;
ALTER TABLE outbox ADD COLUMN dlr_parts INTEGER;
CREATE UNIQUE INDEX outbox_unticketed ON outbox (kind, dedupe_key, recipient) WHERE ticket_id IS NULL;

CREATE TABLE inbound_messages (
    id           BIGSERIAL PRIMARY KEY,
    endpoint     TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    external_id  TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    sender       TEXT,
    parsed       TEXT    NOT NULL,
    raw          TEXT,
    status       TEXT    NOT NULL DEFAULT 'pending',
    outcome      TEXT,
    detail       TEXT,
    ticket_id    BIGINT  REFERENCES tickets (id),
    outbox_id    BIGINT  REFERENCES outbox (id),
    tries        INTEGER NOT NULL DEFAULT 0,
    next_try_at  BIGINT  NOT NULL,
    processed_at BIGINT,
    UNIQUE (endpoint, route, external_id)
);
CREATE INDEX inbound_pending ON inbound_messages (next_try_at) WHERE status = 'pending';
CREATE INDEX inbound_sender ON inbound_messages (sender, received_at);
CREATE INDEX inbound_ticket ON inbound_messages (ticket_id) WHERE ticket_id IS NOT NULL;

CREATE TABLE sms_opt_out (
    number       TEXT    PRIMARY KEY,
    keyword      TEXT    NOT NULL,
    opted_out_at BIGINT  NOT NULL,
    inbound_id   BIGINT
);

CREATE TABLE dlr_parts (
    outbox_id   BIGINT  NOT NULL REFERENCES outbox (id),
    part        INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (outbox_id, part)
);

ALTER TABLE tickets ADD COLUMN citizen_mobile TEXT;
ALTER TABLE tickets ADD COLUMN citizen_email TEXT;
UPDATE tickets SET citizen_mobile = citizen::jsonb ->> 'mobile',
                   citizen_email = lower(citizen::jsonb ->> 'email');
CREATE INDEX tickets_citizen_mobile ON tickets (citizen_mobile) WHERE citizen_mobile IS NOT NULL;
CREATE INDEX tickets_citizen_email ON tickets (citizen_email) WHERE citizen_email IS NOT NULL;
