-- The phone and SMS answering backup (issue 19). A wrong access code for a ticket, by phone or
-- by SMS: after `voice.access_code.max_failures` of them within `voice.access_code.lockout_hours`
-- no code opens the ticket until the oldest is older than that. `attempt_key` names the request
-- that made the try (a call's id and step, or an inbound record), so a provider's repeat of the
-- same request counts once. No number, no code: only which ticket and when.
CREATE TABLE access_code_failures (
    id           INTEGER PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets (id),
    attempt_key  TEXT    NOT NULL UNIQUE,
    channel      TEXT    NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX access_code_failures_ticket ON access_code_failures (ticket_id, at);
