-- The tenant's whole schema: workers and tokens, boards and lanes, items
-- with their claim, dependencies, comments, the event history and
-- idempotency records. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE workers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('human', 'agent')),
    created_at  INTEGER NOT NULL
);

CREATE TABLE boards (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL,
    key                  TEXT NOT NULL UNIQUE,
    locked               INTEGER NOT NULL DEFAULT 0,
    claim_limit          INTEGER NOT NULL DEFAULT 3,
    agent_lease_seconds  INTEGER NOT NULL DEFAULT 1800,
    human_lease_seconds  INTEGER NOT NULL DEFAULT 259200,
    agents_need_ready    INTEGER NOT NULL DEFAULT 1,
    next_number          INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    -- SHA-256 of the whole secret; the secret itself is never stored.
    hash          BLOB NOT NULL UNIQUE,
    -- First characters of the secret, so a human can tell tokens apart.
    prefix        TEXT NOT NULL,
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    scopes        TEXT NOT NULL,
    board_id      INTEGER REFERENCES boards (id),
    expires_at    INTEGER,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE lanes (
    id         INTEGER PRIMARY KEY,
    board_id   INTEGER NOT NULL REFERENCES boards (id),
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('backlog', 'ready', 'in_progress', 'review', 'blocked', 'done')),
    position   INTEGER NOT NULL,
    wip_limit  INTEGER,
    who        TEXT NOT NULL DEFAULT 'any' CHECK (who IN ('any', 'humans', 'agents'))
);
CREATE INDEX lanes_by_board ON lanes (board_id, position);

CREATE TABLE items (
    id                INTEGER PRIMARY KEY,
    board_id          INTEGER NOT NULL REFERENCES boards (id),
    number            INTEGER NOT NULL,
    lane_id           INTEGER NOT NULL REFERENCES lanes (id),
    -- The lane's role and whether it is claimable (backlog/ready), kept on
    -- the row so the queue reads its next item straight off an index.
    status            TEXT NOT NULL,
    open              INTEGER NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('task', 'subtask', 'defect')),
    parent_id         INTEGER REFERENCES items (id),
    title             TEXT NOT NULL,
    body              TEXT NOT NULL DEFAULT '',
    priority          INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 4),
    labels            TEXT NOT NULL DEFAULT '[]',
    agent_ready       INTEGER NOT NULL DEFAULT 0,
    claim_worker_id   INTEGER REFERENCES workers (id),
    claimed_at        INTEGER,
    lease_expires_at  INTEGER,
    claim_token       INTEGER,
    -- Highest fencing token ever handed out for this item.
    claim_seq         INTEGER NOT NULL DEFAULT 0,
    version           INTEGER NOT NULL DEFAULT 1,
    created_by        INTEGER REFERENCES workers (id),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (board_id, number)
);
CREATE INDEX items_queue ON items (board_id, open, priority, id);
CREATE INDEX items_agent_queue ON items (board_id, open, agent_ready, priority, id);
CREATE INDEX items_by_lane ON items (lane_id);
CREATE INDEX items_by_holder ON items (claim_worker_id, board_id) WHERE claim_worker_id IS NOT NULL;
CREATE INDEX items_by_lease ON items (lease_expires_at) WHERE claim_worker_id IS NOT NULL;
CREATE INDEX items_by_parent ON items (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE item_deps (
    item_id        INTEGER NOT NULL REFERENCES items (id),
    blocked_by_id  INTEGER NOT NULL REFERENCES items (id),
    PRIMARY KEY (item_id, blocked_by_id)
) WITHOUT ROWID;
CREATE INDEX item_deps_reverse ON item_deps (blocked_by_id);

CREATE TABLE comments (
    id          INTEGER PRIMARY KEY,
    item_id     INTEGER NOT NULL REFERENCES items (id),
    author_id   INTEGER NOT NULL REFERENCES workers (id),
    kind        TEXT NOT NULL CHECK (kind IN ('comment', 'progress', 'checkpoint')),
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX comments_by_item ON comments (item_id, kind, id);

-- AUTOINCREMENT: event ids only ever grow, even after deletes, so
-- `after=` cursors and SSE resumption never skip or repeat.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    board_id  INTEGER NOT NULL,
    item_id   INTEGER,
    type      TEXT NOT NULL,
    actor_id  INTEGER,
    at        INTEGER NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX events_by_item ON events (item_id, id);
CREATE INDEX events_by_board ON events (board_id, id);

CREATE TABLE idempotency_keys (
    worker_id     INTEGER NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    status        INTEGER NOT NULL,
    response      BLOB NOT NULL,
    content_type  TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (worker_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);
