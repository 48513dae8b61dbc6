-- Control-plane database: the waitlist, the tenants it turned into, their
-- phase history and the one-time reveal links. Times are Unix milliseconds.

CREATE TABLE signups (
    id          INTEGER PRIMARY KEY,
    email       TEXT    NOT NULL,
    -- lower-cased email: the dedupe key
    email_norm  TEXT    NOT NULL UNIQUE,
    company     TEXT,
    note        TEXT,
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER
);
CREATE INDEX signups_status ON signups (status, id);

CREATE TABLE tenants (
    tenant              TEXT    PRIMARY KEY,
    signup_id           INTEGER NOT NULL UNIQUE REFERENCES signups (id),
    -- provisioning | ready | manual | suspended | deleted
    state               TEXT    NOT NULL,
    -- last phase reported by the operator (Pending, Provisioning, Ready, ...)
    phase               TEXT,
    approved_at         INTEGER NOT NULL,
    ready_at            INTEGER,
    provisioning_ms     INTEGER,
    revealed_at         INTEGER,
    -- SHA-256 of the bootstrap token, kept after the reveal (never the token)
    bootstrap_token_sha256 TEXT
);

CREATE TABLE tenant_events (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT    NOT NULL REFERENCES tenants (tenant),
    event     TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX tenant_events_tenant ON tenant_events (tenant, id);

CREATE TABLE reveals (
    -- SHA-256 of the reveal token; the token itself is never stored
    token_sha256 TEXT    PRIMARY KEY,
    tenant       TEXT    NOT NULL REFERENCES tenants (tenant),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX reveals_tenant ON reveals (tenant);
