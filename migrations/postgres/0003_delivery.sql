-- Delivery through real channels. Every attempt is recorded; a row knows whether an earlier
-- attempt may have gone through (in_doubt), how many times it was sent again in doubt (resent:
-- the duplicates we allowed), which provider took it and under which id. lease_token guards the
-- write of an attempt's result against a lease that expired and was taken by another worker.
ALTER TABLE outbox ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN resent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN provider TEXT;
ALTER TABLE outbox ADD COLUMN provider_id TEXT;
ALTER TABLE outbox ADD COLUMN lease_token BIGINT;

CREATE TABLE delivery_attempts (
    id            BIGSERIAL PRIMARY KEY,
    outbox_id     BIGINT  NOT NULL REFERENCES outbox (id),
    attempt       INTEGER NOT NULL,
    started_at_ms BIGINT  NOT NULL,
    latency_ms    INTEGER NOT NULL,
    channel       TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    code          TEXT,
    provider_id   TEXT,
    error         TEXT
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id);
CREATE INDEX outbox_provider_id ON outbox (provider_id) WHERE provider_id IS NOT NULL;
