//! The sync tables (migration 0004): links, item mappings, the outbox the
//! history trigger fills, the inbound inbox and remote users. Plain SQL;
//! the decisions live in `worker` and `mapping`.

use super::mapping::RemoteState;
use sqlx::SqlitePool;

/// A board's link, as stored (secrets still sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkRow {
    pub board_id: i64,
    pub provider: String,
    pub repo: String,
    pub api_url: String,
    pub token_sealed: Option<String>,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_until: Option<i64>,
    pub nonce: String,
    pub import_mode: String,
    pub comments: bool,
    pub enabled: bool,
    pub import_next: Option<String>,
    pub import_done: bool,
    pub poll_since: Option<String>,
    pub poll_etag: Option<String>,
    pub blocked_until: Option<i64>,
    pub last_push_at: Option<i64>,
    pub last_inbound_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The reconciler's comment poll: newest `updated_at` seen, and the ETag.
    pub comment_poll_since: Option<String>,
    pub comment_poll_etag: Option<String>,
}

impl LinkRow {
    /// Issue numbers are only meaningful inside one repository of one host.
    pub fn repo_key(&self) -> String {
        format!("{}|{}|{}", self.provider, self.api_url, self.repo)
    }
}

const SELECT_LINK: &str = "SELECT board_id, provider, repo, api_url, token_sealed, secret_sealed, previous_secret_sealed, \
    previous_until, nonce, import_mode, comments, enabled, import_next, import_done, poll_since, poll_etag, blocked_until, \
    last_push_at, last_inbound_at, last_error, created_at, updated_at, comment_poll_since, comment_poll_etag FROM sync_links";

pub async fn link(pool: &SqlitePool, board_id: i64) -> Result<Option<LinkRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_LINK} WHERE board_id = ?"))
        .bind(board_id)
        .fetch_optional(pool)
        .await
}

pub async fn links(pool: &SqlitePool) -> Result<Vec<LinkRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_LINK} ORDER BY board_id"))
        .fetch_all(pool)
        .await
}

/// The board a repository is linked to, if any.
pub async fn board_of_repo(
    pool: &SqlitePool,
    provider: &str,
    api_url: &str,
    repo: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT board_id FROM sync_links WHERE provider = ? AND api_url = ? AND repo = ?",
    )
    .bind(provider)
    .bind(api_url)
    .bind(repo)
    .fetch_optional(pool)
    .await
}

/// Creates or replaces a board's link and queues every item of the board
/// (a new link mirrors what already exists), in one transaction.
pub async fn save_link(writer: &SqlitePool, link: &LinkRow) -> Result<(), sqlx::Error> {
    let mut tx = writer.begin().await?;
    sqlx::query(
        "INSERT INTO sync_links (board_id, provider, repo, api_url, token_sealed, secret_sealed, previous_secret_sealed, \
         previous_until, nonce, import_mode, comments, enabled, import_next, import_done, poll_since, poll_etag, blocked_until, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, NULL, ?, ?) \
         ON CONFLICT (board_id) DO UPDATE SET provider = excluded.provider, repo = excluded.repo, api_url = excluded.api_url, \
         token_sealed = excluded.token_sealed, secret_sealed = excluded.secret_sealed, \
         previous_secret_sealed = excluded.previous_secret_sealed, previous_until = excluded.previous_until, \
         import_mode = excluded.import_mode, comments = excluded.comments, enabled = excluded.enabled, \
         import_done = CASE WHEN sync_links.repo = excluded.repo AND sync_links.import_mode = excluded.import_mode \
                       THEN sync_links.import_done ELSE excluded.import_done END, \
         last_error = NULL, updated_at = excluded.updated_at",
    )
    .bind(link.board_id)
    .bind(&link.provider)
    .bind(&link.repo)
    .bind(&link.api_url)
    .bind(&link.token_sealed)
    .bind(&link.secret_sealed)
    .bind(&link.previous_secret_sealed)
    .bind(link.previous_until)
    .bind(&link.nonce)
    .bind(&link.import_mode)
    .bind(link.comments)
    .bind(link.enabled)
    .bind(link.import_done)
    .bind(&link.poll_since)
    .bind(link.created_at)
    .bind(link.updated_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sync_outbox (item_id, board_id, event_id, created_at) \
         SELECT id, board_id, 0, ? FROM items WHERE board_id = ? ORDER BY id \
         ON CONFLICT (item_id) DO UPDATE SET attempts = 0, next_attempt_at = 0",
    )
    .bind(link.updated_at)
    .bind(link.board_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Unlinks: the link goes, items keep their remote references.
pub async fn delete_link(writer: &SqlitePool, board_id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let gone = sqlx::query("DELETE FROM sync_links WHERE board_id = ?")
        .bind(board_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    sqlx::query("DELETE FROM sync_outbox WHERE board_id = ?")
        .bind(board_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(gone)
}

pub async fn rotate_secret(
    writer: &SqlitePool,
    board_id: i64,
    sealed: &str,
    previous_until: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sync_links SET previous_secret_sealed = secret_sealed, previous_until = ?, secret_sealed = ?, updated_at = ? \
         WHERE board_id = ?",
    )
    .bind(previous_until)
    .bind(sealed)
    .bind(now)
    .bind(board_id)
    .execute(writer)
    .await?
    .rows_affected()
        > 0)
}

/// Link bookkeeping the worker writes after its calls.
#[derive(Debug, Default)]
pub struct LinkProgress<'a> {
    pub last_push_at: Option<i64>,
    pub last_inbound_at: Option<i64>,
    /// `Some(None)` clears the error.
    pub last_error: Option<Option<&'a str>>,
    pub blocked_until: Option<Option<i64>>,
}

pub async fn record_progress(
    writer: &SqlitePool,
    board_id: i64,
    p: &LinkProgress<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_links SET last_push_at = COALESCE(?, last_push_at), last_inbound_at = COALESCE(?, last_inbound_at), \
         last_error = CASE WHEN ? THEN ? ELSE last_error END, \
         blocked_until = CASE WHEN ? THEN ? ELSE blocked_until END WHERE board_id = ?",
    )
    .bind(p.last_push_at)
    .bind(p.last_inbound_at)
    .bind(p.last_error.is_some())
    .bind(p.last_error.flatten())
    .bind(p.blocked_until.is_some())
    .bind(p.blocked_until.flatten())
    .bind(board_id)
    .execute(writer)
    .await?;
    Ok(())
}

pub async fn record_import(
    writer: &SqlitePool,
    board_id: i64,
    next: Option<&str>,
    done: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_links SET import_next = ?, import_done = ? WHERE board_id = ?")
        .bind(next)
        .bind(done)
        .bind(board_id)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn record_poll(
    writer: &SqlitePool,
    board_id: i64,
    since: Option<&str>,
    etag: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_links SET poll_since = COALESCE(?, poll_since), poll_etag = ? WHERE board_id = ?")
        .bind(since)
        .bind(etag)
        .bind(board_id)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn record_comment_poll(
    writer: &SqlitePool,
    board_id: i64,
    since: Option<&str>,
    etag: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_links SET comment_poll_since = COALESCE(?, comment_poll_since), comment_poll_etag = ? \
         WHERE board_id = ?",
    )
    .bind(since)
    .bind(etag)
    .bind(board_id)
    .execute(writer)
    .await?;
    Ok(())
}

/// Rows of the outbox now due for one board, oldest first.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub item_id: i64,
    pub event_id: i64,
    pub attempts: i64,
}

pub async fn due(
    pool: &SqlitePool,
    board_id: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT item_id, event_id, attempts FROM sync_outbox WHERE board_id = ? AND next_attempt_at <= ? \
         ORDER BY created_at, item_id LIMIT ?",
    )
    .bind(board_id)
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn pending_count(pool: &SqlitePool, board_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM sync_outbox WHERE board_id = ?")
        .bind(board_id)
        .fetch_one(pool)
        .await
}

pub async fn queue_depth(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM sync_outbox")
        .fetch_one(pool)
        .await
}

/// Done with an item, unless a newer event arrived while we worked.
pub async fn outbox_done(writer: &SqlitePool, row: &OutboxRow) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sync_outbox WHERE item_id = ? AND event_id = ?")
        .bind(row.item_id)
        .bind(row.event_id)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn outbox_retry(
    writer: &SqlitePool,
    item_id: i64,
    attempts: i64,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_outbox SET attempts = ?, next_attempt_at = ? WHERE item_id = ?")
        .bind(attempts)
        .bind(at)
        .bind(item_id)
        .execute(writer)
        .await?;
    Ok(())
}

/// Puts an item in the outbox (inbound merge that must push the board's value back).
pub async fn enqueue(
    writer: &SqlitePool,
    board_id: i64,
    item_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_outbox (item_id, board_id, event_id, created_at) VALUES (?, ?, 0, ?) \
         ON CONFLICT (item_id) DO UPDATE SET attempts = 0, next_attempt_at = 0",
    )
    .bind(item_id)
    .bind(board_id)
    .bind(now)
    .execute(writer)
    .await?;
    Ok(())
}

/// An item's mapping to its issue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncItemRow {
    pub item_id: i64,
    pub board_id: i64,
    pub repo_key: String,
    pub nonce: String,
    pub number: Option<i64>,
    pub url: Option<String>,
    pub snapshot: Option<String>,
    pub create_started_at: Option<i64>,
    pub state: String,
    pub error: Option<String>,
}

impl SyncItemRow {
    pub fn snapshot(&self) -> Option<RemoteState> {
        self.snapshot
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }
}

const SELECT_SYNC_ITEM: &str = "SELECT item_id, board_id, repo_key, nonce, number, url, snapshot, create_started_at, state, error FROM sync_items";

pub async fn sync_item(
    pool: &SqlitePool,
    item_id: i64,
) -> Result<Option<SyncItemRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_SYNC_ITEM} WHERE item_id = ?"))
        .bind(item_id)
        .fetch_optional(pool)
        .await
}

pub async fn sync_item_by_number(
    pool: &SqlitePool,
    repo_key: &str,
    number: i64,
) -> Result<Option<SyncItemRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT_SYNC_ITEM} WHERE repo_key = ? AND number = ?"
    ))
    .bind(repo_key)
    .bind(number)
    .fetch_optional(pool)
    .await
}

/// Records, before sending, that a create is about to go out.
pub async fn create_started(
    writer: &SqlitePool,
    item_id: i64,
    board_id: i64,
    repo_key: &str,
    nonce: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_items (item_id, board_id, repo_key, nonce, create_started_at, state, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (item_id) DO UPDATE SET repo_key = excluded.repo_key, \
         nonce = excluded.nonce, number = NULL, url = NULL, snapshot = NULL, create_started_at = excluded.create_started_at, \
         state = 'pending', updated_at = excluded.updated_at",
    )
    .bind(item_id)
    .bind(board_id)
    .bind(repo_key)
    .bind(nonce)
    .bind(now)
    .bind(now)
    .execute(writer)
    .await?;
    Ok(())
}

pub async fn clear_create_started(writer: &SqlitePool, item_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_items SET create_started_at = NULL WHERE item_id = ? AND number IS NULL",
    )
    .bind(item_id)
    .execute(writer)
    .await?;
    Ok(())
}

/// The item now mirrors issue `number`, last agreed as `snapshot`.
#[allow(clippy::too_many_arguments)]
pub async fn record_remote(
    writer: &SqlitePool,
    item_id: i64,
    board_id: i64,
    repo_key: &str,
    nonce: &str,
    number: i64,
    url: &str,
    snapshot: &RemoteState,
    state: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let snapshot = serde_json::to_string(snapshot).unwrap_or_default();
    sqlx::query(
        "INSERT INTO sync_items (item_id, board_id, repo_key, nonce, number, url, snapshot, create_started_at, state, error, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET repo_key = excluded.repo_key, \
         nonce = excluded.nonce, number = excluded.number, url = excluded.url, snapshot = excluded.snapshot, \
         create_started_at = NULL, state = excluded.state, error = excluded.error, updated_at = excluded.updated_at",
    )
    .bind(item_id)
    .bind(board_id)
    .bind(repo_key)
    .bind(nonce)
    .bind(number)
    .bind(url)
    .bind(snapshot)
    .bind(state)
    .bind(error)
    .bind(now)
    .execute(writer)
    .await?;
    Ok(())
}

pub async fn set_item_state(
    writer: &SqlitePool,
    item_id: i64,
    state: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_items SET state = ?, error = ?, updated_at = ? WHERE item_id = ?")
        .bind(state)
        .bind(error)
        .bind(now)
        .bind(item_id)
        .execute(writer)
        .await?;
    Ok(())
}

/// The issue is gone (deleted or transferred): the item stays, unlinked.
pub async fn unlink_item(writer: &SqlitePool, item_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_items SET state = 'unlinked', number = NULL, snapshot = NULL, create_started_at = NULL, \
                 error = 'the remote issue was deleted or transferred', updated_at = ? WHERE item_id = ?")
        .bind(now)
        .bind(item_id)
        .execute(writer)
        .await?;
    Ok(())
}

/// A board comment not yet (certainly) on the remote.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutgoingComment {
    pub id: i64,
    pub body: String,
    pub author: String,
    /// A create was sent before and its outcome is unknown.
    pub started: bool,
}

pub async fn outgoing_comments(
    pool: &SqlitePool,
    item_id: i64,
) -> Result<Vec<OutgoingComment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.body, w.name AS author, (s.id IS NOT NULL) AS started FROM comments c \
         JOIN workers w ON w.id = c.author_id LEFT JOIN sync_comments s ON s.comment_id = c.id \
         WHERE c.item_id = ? AND (s.id IS NULL OR (s.remote_id IS NULL AND s.origin = 'board')) ORDER BY c.id",
    )
    .bind(item_id)
    .fetch_all(pool)
    .await
}

pub async fn comment_started(
    writer: &SqlitePool,
    item_id: i64,
    comment_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sync_comments (item_id, comment_id, started_at) VALUES (?, ?, ?) ON CONFLICT (comment_id) DO NOTHING")
        .bind(item_id)
        .bind(comment_id)
        .bind(now)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn comment_mirrored(
    writer: &SqlitePool,
    comment_id: i64,
    remote_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_comments SET remote_id = ? WHERE comment_id = ?")
        .bind(remote_id)
        .bind(comment_id)
        .execute(writer)
        .await?;
    Ok(())
}

/// A comment known on both sides (or on its way), by its remote id.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KnownComment {
    pub id: i64,
    /// The board comment (NULL while an inbound one is being added).
    pub comment_id: Option<i64>,
    /// `board`, `remote` or `note`.
    pub origin: String,
    pub remote_hash: Option<String>,
    pub remote_updated_at: Option<String>,
    pub remote_deleted: bool,
    pub started_at: i64,
}

pub async fn known_comment(
    pool: &SqlitePool,
    item_id: i64,
    remote_id: i64,
) -> Result<Option<KnownComment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, comment_id, origin, remote_hash, remote_updated_at, remote_deleted, started_at \
         FROM sync_comments WHERE item_id = ? AND remote_id = ?",
    )
    .bind(item_id)
    .bind(remote_id)
    .fetch_optional(pool)
    .await
}

/// A board comment's text and its author's name (to rebuild our mirror).
pub async fn board_comment(
    pool: &SqlitePool,
    comment_id: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.body, w.name FROM comments c JOIN workers w ON w.id = c.author_id WHERE c.id = ?",
    )
    .bind(comment_id)
    .fetch_optional(pool)
    .await
}

/// Records, before the board comment is added, that a remote comment is coming in.
pub async fn inbound_comment_started(
    writer: &SqlitePool,
    item_id: i64,
    remote_id: i64,
    hash: &str,
    updated_at: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_comments (item_id, remote_id, started_at, origin, remote_hash, remote_updated_at) \
         VALUES (?, ?, ?, 'remote', ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(item_id)
    .bind(remote_id)
    .bind(now)
    .bind(hash)
    .bind(updated_at)
    .execute(writer)
    .await?;
    Ok(())
}

/// The remote text last seen for a known comment.
pub async fn remote_comment_seen(
    writer: &SqlitePool,
    id: i64,
    hash: &str,
    updated_at: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_comments SET remote_hash = ?, remote_updated_at = ? WHERE id = ?")
        .bind(hash)
        .bind(updated_at)
        .bind(id)
        .execute(writer)
        .await?;
    Ok(())
}

pub async fn remote_comment_deleted(writer: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_comments SET remote_deleted = 1 WHERE id = ?")
        .bind(id)
        .execute(writer)
        .await?;
    Ok(())
}

/// Our mirror was deleted remotely: forget it, so the board's comment is posted again.
pub async fn forget_mirror(writer: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sync_comments WHERE id = ? AND origin = 'board'")
        .bind(id)
        .execute(writer)
        .await?;
    Ok(())
}

/// A board comment that records a remote edit or deletion: it never mirrors out.
pub async fn note_added(
    writer: &SqlitePool,
    item_id: i64,
    comment_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_comments (item_id, comment_id, started_at, origin) VALUES (?, ?, ?, 'note') \
         ON CONFLICT (comment_id) DO NOTHING",
    )
    .bind(item_id)
    .bind(comment_id)
    .bind(now)
    .execute(writer)
    .await?;
    Ok(())
}

pub async fn inbound_comment_added(
    writer: &SqlitePool,
    item_id: i64,
    remote_id: i64,
    comment_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_comments SET comment_id = ? WHERE item_id = ? AND remote_id = ?")
        .bind(comment_id)
        .bind(item_id)
        .bind(remote_id)
        .execute(writer)
        .await?;
    Ok(())
}

/// A board comment by `author_id` with this body, made at or after `since` (crash recovery).
pub async fn find_comment(
    pool: &SqlitePool,
    item_id: i64,
    author_id: i64,
    body: &str,
    since: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM comments WHERE item_id = ? AND author_id = ? AND body = ? AND created_at >= ? ORDER BY id LIMIT 1",
    )
    .bind(item_id)
    .bind(author_id)
    .bind(body)
    .bind(since)
    .fetch_optional(pool)
    .await
}

/// Stores a delivery; `false` if this delivery id was seen before.
pub async fn inbox_insert(
    writer: &SqlitePool,
    board_id: i64,
    delivery_id: &str,
    event: &str,
    payload: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO sync_inbox (board_id, delivery_id, event, payload, received_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (board_id, delivery_id) DO NOTHING",
    )
    .bind(board_id)
    .bind(delivery_id)
    .bind(event)
    .bind(payload)
    .bind(now)
    .execute(writer)
    .await?
    .rows_affected()
        > 0)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: i64,
    pub event: String,
    pub payload: String,
}

pub async fn inbox_pending(
    pool: &SqlitePool,
    board_id: i64,
    limit: i64,
) -> Result<Vec<InboxRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, event, payload FROM sync_inbox WHERE board_id = ? AND processed_at IS NULL ORDER BY id LIMIT ?")
        .bind(board_id)
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub async fn inbox_done(
    writer: &SqlitePool,
    id: i64,
    outcome: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sync_inbox SET processed_at = ?, outcome = ? WHERE id = ?")
        .bind(now)
        .bind(outcome)
        .bind(id)
        .execute(writer)
        .await?;
    Ok(())
}

/// The worker that acts for a remote user (`github:octocat`), created on first use.
pub async fn remote_worker(
    writer: &SqlitePool,
    provider: &str,
    login: &str,
    now: i64,
) -> Result<(i64, String), sqlx::Error> {
    let login = if login.is_empty() { "unknown" } else { login };
    let name = format!("{provider}:{login}");
    let mut tx = writer.begin().await?;
    sqlx::query("INSERT INTO workers (name, kind, created_at) VALUES (?, 'human', ?) ON CONFLICT (name) DO NOTHING")
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM workers WHERE name = ?")
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO sync_remote_users (worker_id, provider, login) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(provider)
        .bind(login)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((id, name))
}

/// Items of a board created at or after `since` by `author_id` with this
/// title and no mapping yet (an import interrupted between create and record).
pub async fn find_unmapped_item(
    pool: &SqlitePool,
    board_id: i64,
    author_id: i64,
    title: &str,
    since: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT i.id FROM items i LEFT JOIN sync_items s ON s.item_id = i.id WHERE i.board_id = ? AND i.created_by = ? \
         AND i.title = ? AND i.created_at >= ? AND s.item_id IS NULL ORDER BY i.id LIMIT 1",
    )
    .bind(board_id)
    .bind(author_id)
    .bind(title)
    .bind(since)
    .fetch_optional(pool)
    .await
}
