-- The queue indexes hold open items only (issue 11).
--
-- Claim-next reads the queue as `board_id = ? AND open = 1 … ORDER BY
-- priority, id`; nothing reads closed items through these indexes (listing
-- and search use the (board_id, number) key). Keeping closed items in them
-- cost every move to a closing lane two inserts at random places among the
-- closed items: two more 4 KiB pages for the commit to write to the WAL,
-- and indexes that grow with the board's whole history instead of its
-- backlog. Partial indexes drop those entries; reopening an item adds them
-- back.
DROP INDEX items_queue;
DROP INDEX items_agent_queue;
CREATE INDEX items_queue ON items (board_id, priority, id) WHERE open = 1;
CREATE INDEX items_agent_queue ON items (board_id, agent_ready, priority, id) WHERE open = 1;
