//! The queue-health reads behind the dashboard's health page: what is
//! claimable now, who holds claims, recent lease expiries, lane counts,
//! and the lane-entering events that stay durations are computed from.
//! Read-only, on the reader pool; `web::health` turns the rows into the
//! page's figures.

use sqlx::SqlitePool;

/// Live claims of one worker on a board.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerClaimsRow {
    pub name: String,
    pub kind: String,
    pub held: i64,
}

/// A lane and how many items it holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LaneCountRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub wip_limit: Option<i64>,
    pub count: i64,
}

/// An event that moved an item into a lane (created, moved, released,
/// expired), oldest first.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LaneEntryRow {
    pub item_id: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub at: i64,
    /// The event's JSON data.
    pub data: String,
}

/// Items not held (or whose lease lapsed) and not blocked by an open item.
const FREE: &str = "(i.claim_worker_id IS NULL OR i.lease_expires_at <= ?) AND NOT EXISTS \
    (SELECT 1 FROM item_deps d JOIN items bi ON bi.id = d.blocked_by_id WHERE d.item_id = i.id AND bi.status <> 'done')";

/// Open, unheld, unblocked items on a board; `agent_ready_only` counts
/// only those marked ready for agents.
pub async fn claimable_count(
    pool: &SqlitePool,
    board_id: i64,
    agent_ready_only: bool,
    now_ms: i64,
) -> Result<i64, sqlx::Error> {
    let ready = if agent_ready_only {
        " AND i.agent_ready = 1"
    } else {
        ""
    };
    sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM items i WHERE i.board_id = ? AND i.open = 1{ready} AND {FREE}"
    ))
    .bind(board_id)
    .bind(now_ms)
    .fetch_one(pool)
    .await
}

/// Workers holding live claims on a board, most claims first.
pub async fn claims_by_worker(
    pool: &SqlitePool,
    board_id: i64,
    now_ms: i64,
) -> Result<Vec<WorkerClaimsRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.name, w.kind, COUNT(*) AS held FROM items i JOIN workers w ON w.id = i.claim_worker_id \
         WHERE i.board_id = ? AND i.lease_expires_at > ? GROUP BY w.id ORDER BY COUNT(*) DESC, w.name",
    )
    .bind(board_id)
    .bind(now_ms)
    .fetch_all(pool)
    .await
}

/// Leases on a board that expired after `since_ms`.
pub async fn expired_since(
    pool: &SqlitePool,
    board_id: i64,
    since_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE board_id = ? AND type = 'item.claim-expired' AND at > ?",
    )
    .bind(board_id)
    .bind(since_ms)
    .fetch_one(pool)
    .await
}

/// A board's lanes in order, with their item counts.
pub async fn lane_counts(
    pool: &SqlitePool,
    board_id: i64,
) -> Result<Vec<LaneCountRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.id, l.name, l.role, l.wip_limit, (SELECT COUNT(*) FROM items i WHERE i.lane_id = l.id) AS count \
         FROM lanes l WHERE l.board_id = ? ORDER BY l.position, l.id",
    )
    .bind(board_id)
    .fetch_all(pool)
    .await
}

/// The last `window` lane-entering events of a board, oldest first.
pub async fn lane_entries(
    pool: &SqlitePool,
    board_id: i64,
    window: i64,
) -> Result<Vec<LaneEntryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT item_id, type, at, data FROM (SELECT id, item_id, type, at, data FROM events \
         WHERE board_id = ? AND item_id IS NOT NULL AND type IN ('item.created', 'item.moved', 'item.released', 'item.claim-expired') \
         ORDER BY id DESC LIMIT ?) ORDER BY id",
    )
    .bind(board_id)
    .bind(window)
    .fetch_all(pool)
    .await
}
