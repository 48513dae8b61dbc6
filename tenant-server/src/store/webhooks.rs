//! Webhook subscriptions and the durable outbox of their deliveries.

use super::error::{CommandResult, not_found};
use super::model::Timestamp;
use crate::domain::Principal;
use crate::domain::event::EventType;
use serde::Serialize;
use serde_json::json;
use sqlx::{SqliteConnection, SqlitePool};
use utoipa::ToSchema;

/// How a webhook signing secret starts (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh signing secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub board_id: i64,
    pub url: String,
    /// Event types delivered; empty means all.
    pub events: Vec<EventType>,
    pub enabled: bool,
    /// Why the server disabled it (410 Gone, failing for days), if it did.
    pub disabled_reason: Option<String>,
    pub failing_since: Option<Timestamp>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    board_id: i64,
    url: String,
    events: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failing_since: Option<i64>,
    previous_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        let names: Vec<String> = serde_json::from_str(&r.events).unwrap_or_default();
        Self {
            id: r.id,
            board_id: r.board_id,
            url: r.url,
            events: names.iter().filter_map(|n| EventType::parse(n)).collect(),
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            failing_since: r.failing_since.map(Timestamp),
            previous_secret_until: r.previous_until.map(Timestamp),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

const SELECT_WEBHOOK: &str = "SELECT id, board_id, url, events, enabled, disabled_reason, failing_since, previous_until, created_at, updated_at FROM webhooks";

fn event_names(events: &[EventType]) -> String {
    serde_json::to_string(&events.iter().map(|e| e.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

async fn load(conn: &mut SqliteConnection, id: i64) -> Result<Option<Webhook>, sqlx::Error> {
    let row: Option<WebhookRow> = sqlx::query_as(&format!("{SELECT_WEBHOOK} WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Webhook::from))
}

/// A webhook the caller administers, or `404`.
pub async fn get(pool: &SqlitePool, caller: &Principal, id: i64) -> CommandResult<Webhook> {
    let mut conn = pool.acquire().await?;
    load(&mut conn, id)
        .await?
        .filter(|w| caller.is_board_admin(w.board_id))
        .ok_or_else(|| not_found("webhook"))
}

pub async fn list(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
) -> CommandResult<Vec<Webhook>> {
    if !caller.is_board_admin(board_id) {
        return Err(not_found("board"));
    }
    let rows: Vec<WebhookRow> =
        sqlx::query_as(&format!("{SELECT_WEBHOOK} WHERE board_id = ? ORDER BY id"))
            .bind(board_id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Webhook::from).collect())
}

/// Creates a subscription; returns it and its secret (shown only now).
pub async fn create(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
    url: &str,
    events: &[EventType],
    now_ms: i64,
) -> CommandResult<(Webhook, String)> {
    if !caller.is_board_admin(board_id) {
        return Err(not_found("board"));
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    super::boards::load_board(&mut tx, board_id)
        .await?
        .ok_or_else(|| not_found("board"))?;
    let secret = generate_secret();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (board_id, url, events, secret, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(board_id)
    .bind(url)
    .bind(event_names(events))
    .bind(&secret)
    .bind(caller.worker_id)
    .bind(now_ms)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    let hook = load(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("webhook"))?;
    tx.commit().await?;
    Ok((hook, secret))
}

/// Changes URL, events or enabled; re-enabling clears the failure record.
pub async fn update(
    pool: &SqlitePool,
    caller: &Principal,
    id: i64,
    url: Option<&str>,
    events: Option<&[EventType]>,
    enabled: Option<bool>,
    now_ms: i64,
) -> CommandResult<Webhook> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let hook = load(&mut tx, id)
        .await?
        .filter(|w| caller.is_board_admin(w.board_id))
        .ok_or_else(|| not_found("webhook"))?;
    let enabling = enabled == Some(true) && !hook.enabled;
    sqlx::query(
        "UPDATE webhooks SET url = ?, events = ?, enabled = ?, disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, \
         failing_since = CASE WHEN ? THEN NULL ELSE failing_since END, updated_at = ? WHERE id = ?",
    )
    .bind(url.unwrap_or(&hook.url))
    .bind(event_names(events.unwrap_or(&hook.events)))
    .bind(enabled.unwrap_or(hook.enabled))
    .bind(enabling)
    .bind(enabling)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let updated = load(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("webhook"))?;
    tx.commit().await?;
    Ok(updated)
}

pub async fn delete(pool: &SqlitePool, caller: &Principal, id: i64) -> CommandResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    load(&mut tx, id)
        .await?
        .filter(|w| caller.is_board_admin(w.board_id))
        .ok_or_else(|| not_found("webhook"))?;
    sqlx::query("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ?)")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM webhooks WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// New secret; the old one keeps signing for `overlap_ms` so receivers
/// can switch without dropping a delivery.
pub async fn rotate_secret(
    pool: &SqlitePool,
    caller: &Principal,
    id: i64,
    overlap_ms: i64,
    now_ms: i64,
) -> CommandResult<(Webhook, String)> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    load(&mut tx, id)
        .await?
        .filter(|w| caller.is_board_admin(w.board_id))
        .ok_or_else(|| not_found("webhook"))?;
    let secret = generate_secret();
    sqlx::query("UPDATE webhooks SET previous_secret = secret, previous_until = ?, secret = ?, updated_at = ? WHERE id = ?")
        .bind(now_ms + overlap_ms)
        .bind(&secret)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let hook = load(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("webhook"))?;
    tx.commit().await?;
    Ok((hook, secret))
}

/// A delivery due for an attempt, with what is needed to sign and send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub message_id: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
}

pub async fn due(
    pool: &SqlitePool,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, d.webhook_id, d.message_id, d.payload, d.attempts, d.created_at, w.url, w.secret, w.previous_secret, w.previous_until \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.enabled = 1 ORDER BY d.next_attempt_at, d.id LIMIT ?",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// When the next pending delivery is due (for the sender's sleep).
pub async fn next_due_at(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND w.enabled = 1",
    )
    .fetch_one(pool)
    .await
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(i64),
    /// Out of retries.
    Failed,
    /// The endpoint said 410 Gone (or failed for days): disable it.
    DisableEndpoint(String),
}

/// Logs the attempt and applies its outcome, in one transaction.
pub async fn record_attempt(
    pool: &SqlitePool,
    delivery: &DueDelivery,
    attempt: &Attempt,
    outcome: &AttemptOutcome,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error, response) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(delivery.id)
        .bind(attempt.at.0)
        .bind(attempt.status_code)
        .bind(attempt.latency_ms)
        .bind(&attempt.error)
        .bind(&attempt.response)
        .execute(&mut *tx)
        .await?;
    let (status, next, delivered_at) = match outcome {
        AttemptOutcome::Delivered => ("delivered", None, Some(attempt.at.0)),
        AttemptOutcome::RetryAt(at) => ("pending", Some(*at), None),
        AttemptOutcome::Failed | AttemptOutcome::DisableEndpoint(_) => ("failed", None, None),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, delivered_at = ?, last_status = ?, last_error = ? WHERE id = ?",
    )
    .bind(status)
    .bind(next)
    .bind(delivered_at)
    .bind(attempt.status_code)
    .bind(&attempt.error)
    .bind(delivery.id)
    .execute(&mut *tx)
    .await?;
    match outcome {
        AttemptOutcome::Delivered => {
            sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = ?")
                .bind(delivery.webhook_id)
                .execute(&mut *tx)
                .await?;
        }
        AttemptOutcome::DisableEndpoint(reason) => {
            let board: Option<i64> = sqlx::query_scalar("UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ? RETURNING board_id")
                .bind(reason)
                .bind(attempt.at.0)
                .bind(delivery.webhook_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(board_id) = board {
                // Recorded on the board's feed so people notice.
                sqlx::query("INSERT INTO events (board_id, item_id, type, actor_id, at, data) VALUES (?, NULL, 'webhook.disabled', NULL, ?, ?)")
                    .bind(board_id)
                    .bind(attempt.at.0)
                    .bind(json!({"webhook_id": delivery.webhook_id, "reason": reason}).to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        AttemptOutcome::RetryAt(_) | AttemptOutcome::Failed => {
            sqlx::query(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
            )
            .bind(attempt.at.0)
            .bind(delivery.webhook_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// When the webhook's current run of failures began, if it is failing.
pub async fn failing_since(pool: &SqlitePool, webhook_id: i64) -> Result<Option<i64>, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT failing_since FROM webhooks WHERE id = ?")
            .bind(webhook_id)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// What one attempt came to (logged, and listed in the delivery log).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    pub at: Timestamp,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The first 500 bytes of the receiver's answer.
    pub response: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: i64,
    /// The `webhook-id` header, the same on every attempt.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub attempt_log: Vec<Attempt>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event_id: i64,
    message_id: String,
    #[sqlx(rename = "type")]
    kind: String,
    status: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    created_at: i64,
    delivered_at: Option<i64>,
}

/// (at, status, latency, error, response)
type AttemptRow = (i64, Option<i64>, i64, Option<String>, Option<String>);

/// The delivery log of a webhook, newest first, with every attempt.
pub async fn deliveries(
    pool: &SqlitePool,
    caller: &Principal,
    webhook_id: i64,
    limit: i64,
) -> CommandResult<Vec<Delivery>> {
    get(pool, caller, webhook_id).await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, webhook_id, event_id, message_id, type, status, attempts, next_attempt_at, created_at, delivered_at \
         FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT attempted_at, status_code, latency_ms, error, response FROM webhook_attempts WHERE delivery_id = ? ORDER BY id",
        )
        .bind(r.id)
        .fetch_all(pool)
        .await?;
        out.push(Delivery {
            id: r.id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            message_id: r.message_id,
            kind: r.kind,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            delivered_at: r.delivered_at.map(Timestamp),
            attempt_log: attempts
                .into_iter()
                .map(|(at, status_code, latency_ms, error, response)| Attempt {
                    at: Timestamp(at),
                    status_code,
                    latency_ms,
                    error,
                    response,
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Puts a delivery back in the queue for an immediate attempt.
pub async fn retry(
    pool: &SqlitePool,
    caller: &Principal,
    webhook_id: i64,
    delivery_id: i64,
    now_ms: i64,
) -> CommandResult<()> {
    get(pool, caller, webhook_id).await?;
    let done = sqlx::query("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ? WHERE id = ? AND webhook_id = ?")
        .bind(now_ms)
        .bind(delivery_id)
        .bind(webhook_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(not_found("delivery"));
    }
    Ok(())
}

/// Outbox depth and the age of its oldest pending delivery, for metrics.
pub async fn outbox_stats(pool: &SqlitePool, now_ms: i64) -> Result<(i64, f64), sqlx::Error> {
    let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    Ok((
        depth,
        oldest.map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0),
    ))
}
