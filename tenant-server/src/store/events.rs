//! The history: one append function every command uses, and the reads.

use super::model::{Event, EventRow};
use crate::domain::event::EventType;

/// An event about to be appended.
#[derive(Debug)]
pub struct NewEvent {
    pub kind: EventType,
    pub board_id: i64,
    pub item_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub at_ms: i64,
    pub data: serde_json::Value,
}

const SELECT_EVENT: &str = "SELECT e.id, e.type, e.board_id, e.item_id, e.actor_id, w.name AS actor_name, \
     w.kind AS actor_kind, e.at, e.data FROM events e LEFT JOIN workers w ON w.id = e.actor_id";

/// An item's history, oldest first.
pub async fn for_item(
    pool: &sqlx::SqlitePool,
    item_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "{SELECT_EVENT} WHERE e.item_id = ? AND e.id > ? ORDER BY e.id LIMIT ?"
    ))
    .bind(item_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Event::try_from).collect()
}

/// Events after `after`, optionally of one board, oldest first.
/// `boards` confines the feed (None: every board).
pub async fn feed(
    pool: &sqlx::SqlitePool,
    board_id: Option<i64>,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows: Vec<EventRow> = match board_id {
        Some(board) => {
            sqlx::query_as(&format!(
                "{SELECT_EVENT} WHERE e.board_id = ? AND e.id > ? ORDER BY e.id LIMIT ?"
            ))
            .bind(board)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as(&format!(
                "{SELECT_EVENT} WHERE e.id > ? ORDER BY e.id LIMIT ?"
            ))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.into_iter().map(Event::try_from).collect()
}

/// The newest event id, of one board or of all (0 when there is none):
/// where a live feed starts when the client names no cursor.
pub async fn last_id(pool: &sqlx::SqlitePool, board_id: Option<i64>) -> Result<i64, sqlx::Error> {
    match board_id {
        Some(board) => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events WHERE board_id = ?")
                .bind(board)
                .fetch_one(pool)
                .await
        }
        None => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
                .fetch_one(pool)
                .await
        }
    }
}
