-- The dashboard (issue 5): human users who sign in with a password, and
-- their sessions. Each user acts as one human worker. Only the SHA-256 of
-- a session id is stored; the id itself lives only in the browser cookie.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- argon2id PHC string.
    password_hash  TEXT NOT NULL,
    worker_id      INTEGER NOT NULL UNIQUE REFERENCES workers (id),
    scopes         TEXT NOT NULL,
    -- Confines the user to one board, like a token's board_id.
    board_id       INTEGER REFERENCES boards (id),
    created_at     INTEGER NOT NULL,
    disabled_at    INTEGER
);

CREATE TABLE sessions (
    id_hash       BLOB PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    -- Synchronizer token for CSRF: forms carry it, fetch sends X-CSRF-Token.
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    -- Absolute expiry; idle expiry is last_seen_at + the idle limit.
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
