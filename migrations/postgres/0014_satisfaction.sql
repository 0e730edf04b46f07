-- Citizen satisfaction (issue 17): one answer per ticket to the question asked with the closure
-- notice. The primary key on the ticket makes a second answer a conflict that the store ignores
-- (the first answer stands).
CREATE TABLE satisfaction (
    ticket_id    BIGINT  PRIMARY KEY REFERENCES tickets (id),
    score        INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    -- Free text for the office only, never shown on a public page; at most 1000 characters.
    comment      TEXT    CHECK (comment IS NULL OR length(comment) <= 1000),
    channel      TEXT    NOT NULL CHECK (channel IN ('sms', 'portal')),
    answered_at  BIGINT  NOT NULL,
    -- The inbound record an SMS answer came from (null for the status page).
    inbound_id   BIGINT
);

-- The reports read answers by instant.
CREATE INDEX satisfaction_answered_at ON satisfaction (answered_at);
