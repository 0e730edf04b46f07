-- The SMS answering (issue 19): one row per citizen SMS that asked STATO/INFO/PRATICA/AIUTO,
-- keyed by its inbound record, so a provider delivering the same message twice (or a pass done
-- again) answers once. `outcome` is what was done: `status`, `general`, `help` (an answer
-- queued), `limited` (over voice.sms_answers.per_sender_per_day: nothing sent), `opted_out`.
-- `day` is the local date (Europe/Rome, YYYY-MM-DD) the allowance counts on. No text, no code.
CREATE TABLE sms_answers (
    inbound_id   INTEGER NOT NULL PRIMARY KEY REFERENCES inbound_messages (id),
    sender       TEXT    NOT NULL,
    day          TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    ticket_id    INTEGER,
    at           INTEGER NOT NULL
);
CREATE INDEX sms_answers_sender_day ON sms_answers (sender, day);
