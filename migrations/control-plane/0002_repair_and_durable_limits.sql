-- Approval repair: an approval is recorded (tenants row, state
-- 'provisioning') before its TaskHarbor resource is created. If the process
-- dies in between, resource_created_at stays NULL and the follower creates
-- the resource on start and on its timer.
ALTER TABLE tenants ADD COLUMN resource_created_at INTEGER;
-- Tenants approved before this column existed had their resource created in
-- the same request.
UPDATE tenants SET resource_created_at = approved_at WHERE state <> 'manual';

-- The waitlist's per-client rate-limit windows, kept in the database so a
-- restart (or a crash loop) does not hand every client a fresh allowance.
CREATE TABLE rate_windows (
    client       TEXT    PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
);
