-- Issue 17: runs of scheduled jobs (the monthly report e-mail). One row per job and period: the
-- unique key is what lets only one daemon, once, claim a run; the claim and the messages it
-- queues are one transaction.
CREATE TABLE report_schedule (
    id          INTEGER PRIMARY KEY,
    -- `monthly_report`
    job         TEXT    NOT NULL,
    -- The period reported, `YYYY-MM` for a month.
    period      TEXT    NOT NULL,
    -- The instant the run was due, and the instant a daemon claimed it and queued its messages.
    due_at      BIGINT  NOT NULL,
    claimed_at  BIGINT  NOT NULL,
    -- The outbox rows queued, as a JSON array of ids.
    outbox_ids  TEXT    NOT NULL DEFAULT '[]',
    -- When every one of them was delivered (NULL until then).
    sent_at     BIGINT,
    UNIQUE (job, period)
);
