-- The console's work queues (issue 18). What a person did about a message: `resolution` is the
-- last staff action on it as JSON (action, reason, by, at, replacement, event); `resolved_at`
-- and `resolved_by` say when and by whom it left the queues for good (marked delivered, a
-- contact made, the contact corrected). A resent or given-up message is not resolved: if it is
-- held or dies again it is back in a queue.
ALTER TABLE outbox ADD COLUMN resolved_at BIGINT;
ALTER TABLE outbox ADD COLUMN resolved_by TEXT;
ALTER TABLE outbox ADD COLUMN resolution TEXT;

-- Each queue's list and count reads its own partial index, in id order.
CREATE INDEX outbox_uncertain ON outbox (id) WHERE state = 'uncertain';
-- Dead messages to a citizen not handled yet; those the fallback chain went on from are left
-- out by a probe of the unique key (ticket_id, kind, dedupe_key, recipient).
CREATE INDEX outbox_unreachable ON outbox (id)
    WHERE state = 'dead' AND recipient = 'citizen' AND resolved_at IS NULL AND ticket_id IS NOT NULL;
CREATE INDEX inbound_unmatched_id ON inbound_messages (id) WHERE status = 'unmatched';
CREATE INDEX sms_opt_out_at ON sms_opt_out (opted_out_at);

-- Opt-outs lifted from the console at the citizen's request: a second click of the same lift
-- finds the number here and changes nothing. A new STOP puts the number back in sms_opt_out.
CREATE TABLE sms_opt_out_lifts (
    number     TEXT    PRIMARY KEY,
    lifted_at  BIGINT  NOT NULL,
    lifted_by  TEXT    NOT NULL
);
