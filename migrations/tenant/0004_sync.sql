-- GitHub/GitLab sync (issue 10): board links, the item <-> issue mapping
-- with the last agreed remote state, the outbox (filled by a trigger on
-- the history, so no write path can bypass it), the inbound inbox
-- (deduplicated by delivery id) and the remote users inbound changes are
-- recorded as. Secrets are AES-256-GCM sealed (see src/sync/crypto.rs).

CREATE TABLE sync_links (
    board_id             INTEGER PRIMARY KEY REFERENCES boards (id),
    provider             TEXT NOT NULL CHECK (provider IN ('github', 'gitlab')),
    repo                 TEXT NOT NULL,
    api_url              TEXT NOT NULL,
    -- NULL: use the server's TASKHARBOR_GITHUB_TOKEN / TASKHARBOR_GITLAB_TOKEN.
    token_sealed         TEXT,
    secret_sealed        TEXT NOT NULL,
    previous_secret_sealed TEXT,
    previous_until       INTEGER,
    -- Random id written into every marker, so our issues are recognisable.
    nonce                TEXT NOT NULL,
    import_mode          TEXT NOT NULL CHECK (import_mode IN ('none', 'open', 'all')),
    comments             INTEGER NOT NULL DEFAULT 1,
    enabled              INTEGER NOT NULL DEFAULT 1,
    -- Import progress: the provider's next page, done when import_done = 1.
    import_next          TEXT,
    import_done          INTEGER NOT NULL DEFAULT 0,
    -- Reconciler: issues updated since this RFC 3339 time; ETag of the last answer.
    poll_since           TEXT,
    poll_etag            TEXT,
    -- The provider asked us to wait until then (epoch ms): survives restarts.
    blocked_until        INTEGER,
    last_push_at         INTEGER,
    last_inbound_at      INTEGER,
    last_error           TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX sync_links_by_repo ON sync_links (provider, api_url, repo);

-- One row per item that has (or is getting) a remote issue. Kept on
-- unlink, so linking the same repository again resumes.
CREATE TABLE sync_items (
    item_id            INTEGER PRIMARY KEY REFERENCES items (id),
    board_id           INTEGER NOT NULL,
    -- provider + api_url + repo: numbers are only meaningful inside it.
    repo_key           TEXT NOT NULL,
    nonce              TEXT NOT NULL,
    number             INTEGER,
    url                TEXT,
    -- JSON RemoteState: what the issue was when both sides last agreed.
    snapshot           TEXT,
    -- A create was sent at this time and its outcome is not yet known.
    create_started_at  INTEGER,
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('synced', 'pending', 'error', 'conflict', 'unlinked')),
    error              TEXT,
    updated_at         INTEGER NOT NULL
);
CREATE UNIQUE INDEX sync_items_by_number ON sync_items (repo_key, number) WHERE number IS NOT NULL;

-- Items whose remote issue may be behind: one row per item (state-based,
-- so ten edits in a row cost one push). event_id is the newest event.
CREATE TABLE sync_outbox (
    item_id          INTEGER PRIMARY KEY,
    board_id         INTEGER NOT NULL,
    event_id         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE INDEX sync_outbox_due ON sync_outbox (board_id, next_attempt_at, created_at);

CREATE TRIGGER sync_outbox_on_event AFTER INSERT ON events
WHEN NEW.item_id IS NOT NULL
 AND EXISTS (SELECT 1 FROM sync_links l WHERE l.board_id = NEW.board_id AND l.enabled = 1)
BEGIN
    INSERT INTO sync_outbox (item_id, board_id, event_id, created_at)
    VALUES (NEW.item_id, NEW.board_id, NEW.id, NEW.at)
    ON CONFLICT (item_id) DO UPDATE SET event_id = excluded.event_id, attempts = 0, next_attempt_at = 0;
END;

-- Comments known on both sides: ours once pushed, theirs once imported.
-- comment_id is NULL while an inbound comment is being added (so a crash
-- in between is resolved by looking, not by adding it twice);
-- remote_id is NULL while an outbound create's outcome is unknown.
CREATE TABLE sync_comments (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL,
    comment_id    INTEGER UNIQUE,
    remote_id     INTEGER,
    started_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX sync_comments_by_remote ON sync_comments (item_id, remote_id) WHERE remote_id IS NOT NULL;

-- Inbound deliveries, stored before the 2xx and worked after it.
CREATE TABLE sync_inbox (
    id            INTEGER PRIMARY KEY,
    board_id      INTEGER NOT NULL,
    delivery_id   TEXT NOT NULL,
    event         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    processed_at  INTEGER,
    outcome       TEXT,
    UNIQUE (board_id, delivery_id)
);
CREATE INDEX sync_inbox_pending ON sync_inbox (board_id, id) WHERE processed_at IS NULL;

-- The workers inbound changes act as ("github:octocat"); their history
-- events carry "via" and the remote login.
CREATE TABLE sync_remote_users (
    worker_id  INTEGER PRIMARY KEY REFERENCES workers (id),
    provider   TEXT NOT NULL,
    login      TEXT NOT NULL
);

CREATE TRIGGER sync_events_via AFTER INSERT ON events
WHEN NEW.actor_id IS NOT NULL AND EXISTS (SELECT 1 FROM sync_remote_users u WHERE u.worker_id = NEW.actor_id)
BEGIN
    UPDATE events SET data = json_set(data,
        '$.via', (SELECT provider FROM sync_remote_users WHERE worker_id = NEW.actor_id),
        '$.remote_user', (SELECT login FROM sync_remote_users WHERE worker_id = NEW.actor_id))
    WHERE id = NEW.id;
END;
