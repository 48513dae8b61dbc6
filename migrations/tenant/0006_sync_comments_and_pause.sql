-- Sync, second round (issue 10): comments are polled and their edits and
-- deletions are followed, and a paused link keeps collecting its outbox.

-- A paused link (enabled = 0) still records which items fell behind, so
-- `pending` shows what waits and resuming drains it; the worker simply
-- does not run while paused.
DROP TRIGGER sync_outbox_on_event;
CREATE TRIGGER sync_outbox_on_event AFTER INSERT ON events
WHEN NEW.item_id IS NOT NULL
 AND EXISTS (SELECT 1 FROM sync_links l WHERE l.board_id = NEW.board_id)
BEGIN
    INSERT INTO sync_outbox (item_id, board_id, event_id, created_at)
    VALUES (NEW.item_id, NEW.board_id, NEW.id, NEW.at)
    ON CONFLICT (item_id) DO UPDATE SET event_id = excluded.event_id, attempts = 0, next_attempt_at = 0;
END;

-- The reconciler's comment poll (GitHub lists a repository's comments by
-- update time): where it got to, and the ETag of its last first page.
ALTER TABLE sync_links ADD COLUMN comment_poll_since TEXT;
ALTER TABLE sync_links ADD COLUMN comment_poll_etag TEXT;

-- Where a known comment came from: 'board' (ours, mirrored out), 'remote'
-- (theirs, imported) or 'note' (a board comment recording a remote edit or
-- deletion; it never mirrors out). remote_hash/remote_updated_at are the
-- remote text last seen (SHA-256 hex) and its time, so a redelivered,
-- late or polled copy of the same edit changes nothing twice.
ALTER TABLE sync_comments ADD COLUMN origin TEXT NOT NULL DEFAULT 'board'
    CHECK (origin IN ('board', 'remote', 'note'));
ALTER TABLE sync_comments ADD COLUMN remote_hash TEXT;
ALTER TABLE sync_comments ADD COLUMN remote_updated_at TEXT;
ALTER TABLE sync_comments ADD COLUMN remote_deleted INTEGER NOT NULL DEFAULT 0;
-- Rows of round one: imported comments were written by a remote user.
UPDATE sync_comments SET origin = 'remote'
 WHERE comment_id IN (SELECT c.id FROM comments c JOIN sync_remote_users u ON u.worker_id = c.author_id)
    OR (comment_id IS NULL AND remote_id IS NOT NULL);
