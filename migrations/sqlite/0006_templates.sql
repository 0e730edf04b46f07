-- Templates, the admin console's users and sessions, and the audit log (issue 7).

-- Every version of every template. A template is (audience, kind, lang); version 1 is the
-- first edit (the bundled default counts as version 0 and lives in the binary). At most one
-- version of a template is live.
CREATE TABLE template_versions (
    id           INTEGER PRIMARY KEY,
    audience     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    lang         TEXT    NOT NULL,
    version      INTEGER  NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('live', 'proposed', 'retired', 'withdrawn')),
    subject      TEXT    NOT NULL,
    body_text    TEXT    NOT NULL,
    body_html    TEXT,
    body_sms     TEXT,
    note         TEXT    NOT NULL DEFAULT '',
    author       TEXT    NOT NULL,
    created_at   INTEGER  NOT NULL,
    published_by TEXT,
    published_at INTEGER,
    UNIQUE (audience, kind, lang, version)
);
CREATE UNIQUE INDEX template_live ON template_versions (audience, kind, lang) WHERE state = 'live';

CREATE TABLE admin_users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    password_hash TEXT,
    disabled      INTEGER  NOT NULL DEFAULT 0,
    created_at    INTEGER  NOT NULL
);

-- Bearer tokens: `messo_<id>_<secret>`; only the argon2 hash of the secret is kept.
CREATE TABLE admin_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER  NOT NULL REFERENCES admin_users (id),
    label       TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    created_at  INTEGER  NOT NULL,
    revoked_at  INTEGER
);

-- Console sessions: the SHA-256 of the cookie's random value, never the value itself.
CREATE TABLE admin_sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_id     INTEGER  NOT NULL REFERENCES admin_users (id),
    csrf        TEXT    NOT NULL,
    created_at  INTEGER  NOT NULL,
    expires_at  INTEGER  NOT NULL
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER  NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    object  TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX audit_at ON audit_log (at);

-- The words a message went out with (subject, text, HTML, template and version), written once
-- before its first attempt: retries and a later publish never change what a citizen receives.
ALTER TABLE outbox ADD COLUMN rendered TEXT;
