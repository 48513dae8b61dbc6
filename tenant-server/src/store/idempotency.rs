//! Stored first responses for `Idempotency-Key` replays (24 hours): the
//! lookup (reader pool), and the save and purge (on the writer thread).

use super::error::CommandResult;
use super::writer::Tx;
use sqlx::SqlitePool;

pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub request_hash: Vec<u8>,
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

type StoredRow = (Vec<u8>, i64, Vec<u8>, Option<String>);

pub async fn find(
    pool: &SqlitePool,
    worker_id: i64,
    key: &str,
    now_ms: i64,
) -> Result<Option<StoredResponse>, sqlx::Error> {
    let row: Option<StoredRow> = sqlx::query_as(
        "SELECT request_hash, status, response, content_type FROM idempotency_keys WHERE worker_id = ? AND key = ? AND created_at > ?",
    )
    .bind(worker_id)
    .bind(key)
    .bind(now_ms - WINDOW_MS)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(request_hash, status, body, content_type)| StoredResponse {
            request_hash,
            status: u16::try_from(status).unwrap_or(500),
            body,
            content_type,
        },
    ))
}

/// Keeps `response` as the answer to `(worker_id, key)`.
pub fn save(
    tx: &Tx<'_>,
    worker_id: i64,
    key: &str,
    response: &StoredResponse,
    now_ms: i64,
) -> CommandResult<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idempotency_keys (worker_id, key, request_hash, status, response, content_type, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        worker_id,
        key,
        &response.request_hash,
        i64::from(response.status),
        &response.body,
        &response.content_type,
        now_ms
    ])?;
    Ok(())
}

/// Forgets responses older than the window; returns how many.
pub fn purge(tx: &Tx<'_>, now_ms: i64) -> CommandResult<usize> {
    Ok(tx
        .prepare_cached("DELETE FROM idempotency_keys WHERE created_at <= ?")?
        .execute([now_ms - WINDOW_MS])?)
}
