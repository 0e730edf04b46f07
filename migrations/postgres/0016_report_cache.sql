-- Reports of periods that are over, kept with the instant they were computed: valid while no
-- event dated inside the period has been recorded since (checked through
-- ticket_events_recorded), so a past month is replayed once, not at every request.
CREATE TABLE report_cache (
    key          TEXT   PRIMARY KEY,
    computed_at  BIGINT NOT NULL,
    body         TEXT   NOT NULL
);
CREATE INDEX ticket_events_recorded ON ticket_events (recorded_at);
