-- Receipts that come back after a message was accepted: PEC acceptance and delivery receipts
-- today, providers' delivery reports later. One row per (message, source, kind): a receipt that
-- arrives twice is recorded once.
CREATE TABLE delivery_receipts (
    id           BIGSERIAL PRIMARY KEY,
    outbox_id    BIGINT NOT NULL REFERENCES outbox (id),
    source       TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    final        TEXT   NOT NULL,
    detail       TEXT,
    received_at  BIGINT NOT NULL,
    UNIQUE (outbox_id, source, kind)
);
