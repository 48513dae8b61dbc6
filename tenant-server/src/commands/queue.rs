//! The queue commands: claim, claim-next, heartbeat, release, move, and
//! the reaper's lease expiry.

use crate::domain::Principal;
use crate::store::model::Item;
use crate::store::queue::{self, ClaimOutcome, ClaimedItem, MoveTarget, QueueFilter};
use crate::store::{CommandResult, Store};

/// `POST /api/items/{id}/claim`.
pub async fn claim(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    start: bool,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<(ClaimedItem, ClaimOutcome)> {
    let caller = caller.clone();
    store
        .run(move |tx| queue::claim(tx, &caller, item_id, start, fence, now_ms))
        .await
}

/// `POST /api/claim-next`: `None` when nothing is claimable.
pub async fn claim_next(
    store: &Store,
    caller: &Principal,
    filter: &QueueFilter,
    start: bool,
    now_ms: i64,
) -> CommandResult<Option<(ClaimedItem, ClaimOutcome)>> {
    let caller = caller.clone();
    let filter = filter.clone();
    store
        .run(move |tx| queue::claim_next(tx, &caller, &filter, start, now_ms))
        .await
}

/// `POST /api/items/{id}/heartbeat`.
pub async fn heartbeat(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let caller = caller.clone();
    store
        .run(move |tx| queue::heartbeat(tx, &caller, item_id, fence, now_ms))
        .await
}

/// `POST /api/items/{id}/release`.
pub async fn release(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    reason: Option<&str>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let caller = caller.clone();
    let reason = reason.map(str::to_owned);
    store
        .run(move |tx| queue::release(tx, &caller, item_id, reason.as_deref(), fence, now_ms))
        .await
}

/// `POST /api/items/{id}/move`.
pub async fn move_item(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    target: MoveTarget,
    note: Option<&str>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let caller = caller.clone();
    let note = note.map(str::to_owned);
    store
        .run(move |tx| {
            queue::move_item(tx, &caller, item_id, target, note.as_deref(), fence, now_ms)
        })
        .await
}

/// Releases up to `batch` lapsed claims (the lease reaper); returns their ids.
pub async fn reap_expired(store: &Store, batch: i64, now_ms: i64) -> CommandResult<Vec<i64>> {
    store
        .run(move |tx| queue::reap_expired(tx, batch, now_ms))
        .await
}
