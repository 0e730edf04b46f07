-- The personal-data lifecycle (issue 20, point 7). `personal_data_erased_at`: when the
-- retention pass or `messo privacy erase` removed the citizen's contacts and codice fiscale
-- from a ticket (its number, category, dates and SLA figures stay), or an inbound record's
-- sender, text and attachments (its route, instants and outcome stay). `privacy_erasures`: one
-- row per `messo privacy erase`, the accountability record (who, when, why, what was removed);
-- the codice fiscale only as a keyed hash (HMAC-SHA256 under `privacy_keys`' secret, made on
-- first use), so a later request can be matched to it without the store holding the code.
ALTER TABLE tickets ADD COLUMN personal_data_erased_at BIGINT;
CREATE INDEX tickets_closed_with_contacts ON tickets (closed_at)
    WHERE closed_at IS NOT NULL AND personal_data_erased_at IS NULL;
CREATE INDEX outbox_bodies_kept ON outbox (updated_at)
    WHERE state IN ('delivered', 'dead', 'uncertain') AND (rendered IS NOT NULL OR address <> '');
ALTER TABLE inbound_messages ADD COLUMN personal_data_erased_at BIGINT;
CREATE INDEX inbound_with_content ON inbound_messages (received_at)
    WHERE status <> 'pending' AND personal_data_erased_at IS NULL;

CREATE TABLE privacy_erasures (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT  NOT NULL,
    operator    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    cf_hash     TEXT    NOT NULL,
    counts      TEXT    NOT NULL,
    kept        TEXT    NOT NULL
);
CREATE INDEX privacy_erasures_cf ON privacy_erasures (cf_hash);
CREATE INDEX privacy_erasures_at ON privacy_erasures (at);

CREATE TABLE privacy_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
