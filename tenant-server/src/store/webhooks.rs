//! Webhook subscriptions and the durable outbox of their deliveries: the
//! subscription edits and the sender's bookkeeping run on the writer and
//! execute what `domain::webhook` decides; the listings are reads.

use super::error::{CommandResult, not_found};
use super::model::Timestamp;
use super::writer::Tx;
use crate::domain::Principal;
use crate::domain::event::EventType;
use crate::domain::webhook::{self, AttemptOutcome, AttemptResult, WebhookSettings};
use rusqlite::{OptionalExtension, params};
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

impl WebhookRow {
    /// The same columns as `SELECT_WEBHOOK`, read on the writer.
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            board_id: r.get(1)?,
            url: r.get(2)?,
            events: r.get(3)?,
            enabled: r.get(4)?,
            disabled_reason: r.get(5)?,
            failing_since: r.get(6)?,
            previous_until: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
        })
    }
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
        .filter(|w| webhook::may_manage(caller, w.board_id))
        .ok_or_else(|| not_found("webhook"))
}

pub async fn list(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
) -> CommandResult<Vec<Webhook>> {
    if !webhook::may_manage(caller, board_id) {
        return Err(not_found("board"));
    }
    let rows: Vec<WebhookRow> =
        sqlx::query_as(&format!("{SELECT_WEBHOOK} WHERE board_id = ? ORDER BY id"))
            .bind(board_id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Webhook::from).collect())
}

/// A delivery due for an attempt, with what is needed to sign and send it.
#[derive(Debug, Clone)]
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

/// When the next pending delivery is due (for the sender's sleep).
pub async fn next_due_at(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND w.enabled = 1",
    )
    .fetch_one(pool)
    .await
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

// On the writer: the subscription edits and the sender's bookkeeping.

fn load_tx(tx: &Tx<'_>, id: i64) -> CommandResult<Option<Webhook>> {
    Ok(tx
        .prepare_cached(&format!("{SELECT_WEBHOOK} WHERE id = ?"))?
        .query_row([id], WebhookRow::from_sqlite)
        .optional()?
        .map(Webhook::from))
}

/// A webhook the caller administers, or `404`.
fn managed(tx: &Tx<'_>, caller: &Principal, id: i64) -> CommandResult<Webhook> {
    load_tx(tx, id)?
        .filter(|w| webhook::may_manage(caller, w.board_id))
        .ok_or_else(|| not_found("webhook"))
}

/// Creates a subscription signed with `secret` (the caller shows it once).
pub(crate) fn create(
    tx: &Tx<'_>,
    caller: &Principal,
    board_id: i64,
    url: &str,
    events: &[EventType],
    secret: &str,
    now_ms: i64,
) -> CommandResult<Webhook> {
    if !webhook::may_manage(caller, board_id) {
        return Err(not_found("board"));
    }
    super::tx::load_board(tx, board_id)?.ok_or_else(|| not_found("board"))?;
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO webhooks (board_id, url, events, secret, created_by, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?
        .insert(params![
                board_id,
                url,
                event_names(events),
                secret,
                caller.worker_id,
                now_ms,
                now_ms
            ])?;
    load_tx(tx, id)?.ok_or_else(|| not_found("webhook"))
}

/// Changes URL, events or enabled (`domain::webhook::plan_update`);
/// re-enabling clears the failure record and wakes the sender.
pub(crate) fn update(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
    url: Option<&str>,
    events: Option<&[EventType]>,
    enabled: Option<bool>,
    now_ms: i64,
) -> CommandResult<Webhook> {
    let hook = managed(tx, caller, id)?;
    let current = WebhookSettings {
        url: hook.url,
        events: hook.events,
        enabled: hook.enabled,
    };
    let change = webhook::plan_update(&current, url, events, enabled);
    let new = &change.settings;
    tx.prepare_cached(
        "UPDATE webhooks SET url = ?, events = ?, enabled = ?, \
         disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, \
         failing_since = CASE WHEN ? THEN NULL ELSE failing_since END, updated_at = ? WHERE id = ?",
    )?
    .execute(params![
        new.url,
        event_names(&new.events),
        new.enabled,
        change.re_enabled,
        change.re_enabled,
        now_ms,
        id
    ])?;
    if change.re_enabled {
        // Its pending deliveries are due again.
        tx.mark_outbox();
    }
    load_tx(tx, id)?.ok_or_else(|| not_found("webhook"))
}

/// Removes a subscription with its delivery log.
pub(crate) fn delete(tx: &Tx<'_>, caller: &Principal, id: i64) -> CommandResult<()> {
    managed(tx, caller, id)?;
    tx.prepare_cached(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ?)",
    )?
    .execute([id])?;
    tx.prepare_cached("DELETE FROM webhook_deliveries WHERE webhook_id = ?")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM webhooks WHERE id = ?")?
        .execute([id])?;
    Ok(())
}

/// Signs with `secret` from now on; the old one keeps signing for
/// `overlap_ms` so receivers can switch without dropping a delivery.
pub(crate) fn rotate_secret(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
    secret: &str,
    overlap_ms: i64,
    now_ms: i64,
) -> CommandResult<Webhook> {
    managed(tx, caller, id)?;
    tx.prepare_cached(
        "UPDATE webhooks SET previous_secret = secret, previous_until = ?, secret = ?, updated_at = ? WHERE id = ?",
    )?
    .execute(params![now_ms + overlap_ms, secret, now_ms, id])?;
    load_tx(tx, id)?.ok_or_else(|| not_found("webhook"))
}

/// Puts a delivery back in the queue for an immediate attempt, and wakes the sender.
pub(crate) fn retry(
    tx: &Tx<'_>,
    caller: &Principal,
    webhook_id: i64,
    delivery_id: i64,
    now_ms: i64,
) -> CommandResult<()> {
    managed(tx, caller, webhook_id)?;
    let done = tx
        .prepare_cached(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ? WHERE id = ? AND webhook_id = ?",
        )?
        .execute(params![now_ms, delivery_id, webhook_id])?;
    if done == 0 {
        return Err(not_found("delivery"));
    }
    tx.mark_outbox();
    Ok(())
}

/// Takes up to `limit` due deliveries for attempts: each stays pending
/// but is not due again before `now_ms + lease_ms`, so no later take sends
/// it twice while its attempt runs; if the attempt is never recorded (a
/// crash), it is sent again after the lease (at-least-once).
pub(crate) fn take_due(
    tx: &Tx<'_>,
    now_ms: i64,
    limit: i64,
    lease_ms: i64,
) -> CommandResult<Vec<DueDelivery>> {
    let due: Vec<DueDelivery> = tx
        .prepare_cached(
            "SELECT d.id, d.webhook_id, d.message_id, d.payload, d.attempts, d.created_at, w.url, w.secret, \
             w.previous_secret, w.previous_until \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.enabled = 1 \
             ORDER BY d.next_attempt_at, d.id LIMIT ?",
        )?
        .query_map(params![now_ms, limit], |r| {
            Ok(DueDelivery {
                id: r.get(0)?,
                webhook_id: r.get(1)?,
                message_id: r.get(2)?,
                payload: r.get(3)?,
                attempts: r.get(4)?,
                created_at: r.get(5)?,
                url: r.get(6)?,
                secret: r.get(7)?,
                previous_secret: r.get(8)?,
                previous_until: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut lease =
        tx.prepare_cached("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?")?;
    for delivery in &due {
        lease.execute(params![now_ms + lease_ms, delivery.id])?;
    }
    Ok(due)
}

/// Logs an attempt and applies its outcome, which `domain::webhook::
/// decide_attempt` takes from the delivery's attempts and the endpoint's
/// failure run as they are in this transaction. `None`: the delivery is
/// gone (its webhook was deleted meanwhile), nothing to record.
pub(crate) fn record_attempt(
    tx: &Tx<'_>,
    delivery_id: i64,
    attempt: &Attempt,
    result: AttemptResult,
    retry_scale: f64,
    jitter: f64,
) -> CommandResult<Option<AttemptOutcome>> {
    let Some((webhook_id, attempts, failing_since)) = tx
        .prepare_cached(
            "SELECT d.webhook_id, d.attempts, w.failing_since FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?",
        )?
        .query_row([delivery_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let at = attempt.at.0;
    let outcome = webhook::decide_attempt(result, attempts, failing_since, at, retry_scale, jitter);
    tx.prepare_cached(
        "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error, response) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        delivery_id,
        at,
        attempt.status_code,
        attempt.latency_ms,
        attempt.error,
        attempt.response
    ])?;
    let (status, next, delivered_at) = match &outcome {
        AttemptOutcome::Delivered => ("delivered", None, Some(at)),
        AttemptOutcome::RetryAt(when) => ("pending", Some(*when), None),
        AttemptOutcome::Failed | AttemptOutcome::DisableEndpoint(_) => ("failed", None, None),
    };
    tx.prepare_cached(
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, delivered_at = ?, \
         last_status = ?, last_error = ? WHERE id = ?",
    )?
    .execute(params![
        status,
        next,
        delivered_at,
        attempt.status_code,
        attempt.error,
        delivery_id
    ])?;
    match &outcome {
        AttemptOutcome::Delivered => {
            tx.prepare_cached("UPDATE webhooks SET failing_since = NULL WHERE id = ?")?
                .execute([webhook_id])?;
        }
        AttemptOutcome::DisableEndpoint(reason) => {
            let board_id: i64 = tx
                .prepare_cached(
                    "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ? RETURNING board_id",
                )?
                .query_row(params![reason, at, webhook_id], |r| r.get(0))?;
            // On the board's feed so people notice (not a webhook event type).
            super::tx::append_notice(
                tx,
                board_id,
                "webhook.disabled",
                at,
                &json!({"webhook_id": webhook_id, "reason": reason}),
            )?;
        }
        AttemptOutcome::RetryAt(_) | AttemptOutcome::Failed => {
            tx.prepare_cached(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
            )?
            .execute(params![at, webhook_id])?;
        }
    }
    Ok(Some(outcome))
}

/// Deletes up to `batch` finished deliveries (delivered or failed) created
/// before `before_ms`, oldest first, with their attempts; returns how many.
pub(crate) fn prune(tx: &Tx<'_>, before_ms: i64, batch: i64) -> CommandResult<usize> {
    // Ids grow with time: the scan in id order meets the old rows first.
    let old: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ? ORDER BY id LIMIT ?",
        )?
        .query_map(params![before_ms, batch], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut attempts = tx.prepare_cached("DELETE FROM webhook_attempts WHERE delivery_id = ?")?;
    let mut deliveries = tx.prepare_cached("DELETE FROM webhook_deliveries WHERE id = ?")?;
    for id in &old {
        attempts.execute([id])?;
        deliveries.execute([id])?;
    }
    Ok(old.len())
}
