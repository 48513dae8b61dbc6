//! Keeping a first answer for `Idempotency-Key` replays: one writer
//! command, so the record is durable before the answer it replays is
//! sent; and forgetting old ones.

use crate::store::idempotency::{self, StoredResponse};
use crate::store::{CommandResult, Store};

/// Stores `response` as the answer to the caller's `key` (24 hours).
pub async fn remember(
    store: &Store,
    worker_id: i64,
    key: &str,
    response: StoredResponse,
    now_ms: i64,
) -> CommandResult<()> {
    let key = key.to_owned();
    store
        .run(move |tx| idempotency::save(tx, worker_id, &key, &response, now_ms))
        .await
}

/// Forgets answers older than the replay window (the lease reaper's
/// occasional chore); returns how many.
pub async fn purge(store: &Store, now_ms: i64) -> CommandResult<usize> {
    store.run(move |tx| idempotency::purge(tx, now_ms)).await
}
