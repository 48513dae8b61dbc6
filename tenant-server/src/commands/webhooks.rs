//! Webhook commands, on the writer: the subscription edits (create,
//! update, delete, rotate the secret, retry a delivery) and the sender's
//! bookkeeping (take due deliveries, record an attempt, prune the outbox).
//! Signing secrets are generated here, off the writer thread.

use crate::domain::Principal;
use crate::domain::event::EventType;
use crate::domain::webhook::{AttemptOutcome, AttemptResult};
use crate::store::webhooks::{self, Attempt, DueDelivery, Webhook, generate_secret};
use crate::store::{CommandResult, Store};

/// `POST /api/boards/{id}/webhooks` (the URL already checked by the edge):
/// the subscription and its secret, shown only now.
pub async fn create(
    store: &Store,
    caller: &Principal,
    board_id: i64,
    url: &str,
    events: &[EventType],
    now_ms: i64,
) -> CommandResult<(Webhook, String)> {
    let (caller, url, events) = (caller.clone(), url.to_owned(), events.to_vec());
    let secret = generate_secret();
    store
        .run(move |tx| {
            let hook = webhooks::create(tx, &caller, board_id, &url, &events, &secret, now_ms)?;
            Ok((hook, secret.clone()))
        })
        .await
}

/// `PATCH /api/webhooks/{id}`.
pub async fn update(
    store: &Store,
    caller: &Principal,
    id: i64,
    url: Option<&str>,
    events: Option<&[EventType]>,
    enabled: Option<bool>,
    now_ms: i64,
) -> CommandResult<Webhook> {
    let caller = caller.clone();
    let url = url.map(str::to_owned);
    let events = events.map(<[EventType]>::to_vec);
    store
        .run(move |tx| {
            webhooks::update(
                tx,
                &caller,
                id,
                url.as_deref(),
                events.as_deref(),
                enabled,
                now_ms,
            )
        })
        .await
}

/// `DELETE /api/webhooks/{id}`.
pub async fn delete(store: &Store, caller: &Principal, id: i64) -> CommandResult<()> {
    let caller = caller.clone();
    store.run(move |tx| webhooks::delete(tx, &caller, id)).await
}

/// `POST /api/webhooks/{id}/rotate-secret`: the webhook and its new secret.
pub async fn rotate_secret(
    store: &Store,
    caller: &Principal,
    id: i64,
    overlap_ms: i64,
    now_ms: i64,
) -> CommandResult<(Webhook, String)> {
    let caller = caller.clone();
    let secret = generate_secret();
    store
        .run(move |tx| {
            let hook = webhooks::rotate_secret(tx, &caller, id, &secret, overlap_ms, now_ms)?;
            Ok((hook, secret.clone()))
        })
        .await
}

/// `POST /api/webhooks/{id}/deliveries/{delivery}/retry`: wakes the sender.
pub async fn retry(
    store: &Store,
    caller: &Principal,
    webhook_id: i64,
    delivery_id: i64,
    now_ms: i64,
) -> CommandResult<()> {
    let caller = caller.clone();
    store
        .run(move |tx| webhooks::retry(tx, &caller, webhook_id, delivery_id, now_ms))
        .await
}

/// The sender takes up to `limit` due deliveries, leased for `lease_ms`.
pub async fn take_due(
    store: &Store,
    now_ms: i64,
    limit: i64,
    lease_ms: i64,
) -> CommandResult<Vec<DueDelivery>> {
    store
        .run(move |tx| webhooks::take_due(tx, now_ms, limit, lease_ms))
        .await
}

/// The sender records an attempt; returns what the domain decided
/// (`None`: the delivery was deleted meanwhile).
pub async fn record_attempt(
    store: &Store,
    delivery_id: i64,
    attempt: &Attempt,
    result: AttemptResult,
    retry_scale: f64,
    jitter: f64,
) -> CommandResult<Option<AttemptOutcome>> {
    let attempt = attempt.clone();
    store
        .run(move |tx| {
            webhooks::record_attempt(tx, delivery_id, &attempt, result, retry_scale, jitter)
        })
        .await
}

/// Deletes up to `batch` finished deliveries older than `before_ms`.
pub async fn prune_outbox(store: &Store, before_ms: i64, batch: i64) -> CommandResult<usize> {
    store
        .run(move |tx| webhooks::prune(tx, before_ms, batch))
        .await
}
