//! Endpoint health for the webhooks list (issue 14): when each webhook of
//! a board last delivered, and the last error it got. Whether it is
//! failing (`failing_since`) or disabled is on the webhook itself.

use serde::Serialize;
use sqlx::SqlitePool;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeliveryHealth {
    pub webhook_id: i64,
    /// Milliseconds since the epoch of the last delivered message.
    pub last_success_ms: Option<i64>,
    /// The error of the most recent failed attempt, if the last one failed.
    pub last_error: Option<String>,
    pub pending: i64,
}

/// Per webhook of `board_id` (the caller has checked the board).
pub async fn for_board(
    pool: &SqlitePool,
    board_id: i64,
) -> Result<HashMap<i64, DeliveryHealth>, sqlx::Error> {
    let rows: Vec<DeliveryHealth> = sqlx::query_as(
        "SELECT w.id AS webhook_id, \
         (SELECT MAX(d.delivered_at) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'delivered') AS last_success_ms, \
         (SELECT COALESCE(d.last_error, 'HTTP ' || d.last_status) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status <> 'delivered' AND d.attempts > 0 ORDER BY d.id DESC LIMIT 1) AS last_error, \
         (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending') AS pending \
         FROM webhooks w WHERE w.board_id = ?",
    )
    .bind(board_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|h| (h.webhook_id, h)).collect())
}
