-- no-transaction
-- Inbound replies and receipts (issue 6).
--
-- The outbox loses its NOT NULL on ticket_id: a few messages are about no ticket (the answer to
-- a citizen whose reply names none, the confirmation of an SMS opt-out). SQLite cannot drop a
-- NOT NULL in place, so the table is rebuilt; foreign keys are off for the swap only, and the
-- swap is one transaction.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE outbox_rebuilt (
    id            INTEGER PRIMARY KEY,
    ticket_id     INTEGER REFERENCES tickets (id),
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
    in_doubt      INTEGER NOT NULL DEFAULT 0,
    resent        INTEGER NOT NULL DEFAULT 0,
    provider      TEXT,
    provider_id   TEXT,
    lease_token   BIGINT,
    -- What the provider's delivery receipts say (queued, sent, delivered, failed, undelivered,
    -- expired), and in how many parts the message went when a receipt told.
    dlr_state     TEXT,
    dlr_parts     INTEGER,
    UNIQUE (ticket_id, kind, dedupe_key, recipient)
);
INSERT INTO outbox_rebuilt (id, ticket_id, kind, dedupe_key, recipient, channel, address, language,
    payload, not_before, state, attempts, lease_until, last_error, created_at, updated_at,
    delivered_at, in_doubt, resent, provider, provider_id, lease_token)
SELECT id, ticket_id, kind, dedupe_key, recipient, channel, address, language, payload,
    not_before, state, attempts, lease_until, last_error, created_at, updated_at, delivered_at,
    in_doubt, resent, provider, provider_id, lease_token
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE INDEX outbox_ready ON outbox (not_before) WHERE state IN ('pending', 'retry', 'sending');
CREATE INDEX outbox_provider_id ON outbox (provider_id) WHERE provider_id IS NOT NULL;
-- Messages about no ticket are unique by (kind, key, recipient).
CREATE UNIQUE INDEX outbox_unticketed ON outbox (kind, dedupe_key, recipient) WHERE ticket_id IS NULL;

-- Every verified webhook and polled e-mail, stored before it is answered. (endpoint, route,
-- external_id) is what makes a provider's retry a duplicate. `parsed` is what Messo read;
-- `raw` the payload as received, erased after the retention period.
CREATE TABLE inbound_messages (
    id           INTEGER PRIMARY KEY,
    endpoint     TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    external_id  TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    sender       TEXT,
    parsed       TEXT    NOT NULL,
    raw          TEXT,
    status       TEXT    NOT NULL DEFAULT 'pending',
    outcome      TEXT,
    detail       TEXT,
    ticket_id    INTEGER REFERENCES tickets (id),
    outbox_id    INTEGER REFERENCES outbox (id),
    tries        INTEGER NOT NULL DEFAULT 0,
    next_try_at  INTEGER NOT NULL,
    processed_at INTEGER,
    UNIQUE (endpoint, route, external_id)
);
CREATE INDEX inbound_pending ON inbound_messages (next_try_at) WHERE status = 'pending';
CREATE INDEX inbound_sender ON inbound_messages (sender, received_at);
CREATE INDEX inbound_ticket ON inbound_messages (ticket_id) WHERE ticket_id IS NOT NULL;

-- Numbers that asked for no more SMS (STOP, ANNULLA, …).
CREATE TABLE sms_opt_out (
    number       TEXT    PRIMARY KEY,
    keyword      TEXT    NOT NULL,
    opted_out_at INTEGER NOT NULL,
    inbound_id   INTEGER
);

-- Receipt state per part of a message sent in several parts (part 1 when the provider does not
-- tell parts apart).
CREATE TABLE dlr_parts (
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id),
    part        INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, part)
);

-- The citizen's addresses as columns, so a reply's sender finds their tickets by index.
ALTER TABLE tickets ADD COLUMN citizen_mobile TEXT;
ALTER TABLE tickets ADD COLUMN citizen_email TEXT;
UPDATE tickets SET citizen_mobile = json_extract(citizen, '$.mobile'),
                   citizen_email = lower(json_extract(citizen, '$.email'));
CREATE INDEX tickets_citizen_mobile ON tickets (citizen_mobile) WHERE citizen_mobile IS NOT NULL;
CREATE INDEX tickets_citizen_email ON tickets (citizen_email) WHERE citizen_email IS NOT NULL;
COMMIT;
PRAGMA foreign_keys = ON;
