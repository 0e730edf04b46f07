-- The citizen's status links (issue 8).

-- Links issued at or before this instant no longer open (revoked per ticket by an admin).
ALTER TABLE tickets ADD COLUMN links_revoked_at BIGINT;

-- The key status links are signed with when the configuration names none: made once, shared by
-- every daemon on this store. One row.
CREATE TABLE portal_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
