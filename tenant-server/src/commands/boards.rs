//! Board and lane commands, on the writer: create a board with its
//! default lanes, change its settings, create, edit and delete lanes.

use crate::domain::Principal;
use crate::domain::board::{BoardPatch, LanePatch, NewBoard, NewLane};
use crate::store::model::{Board, Lane};
use crate::store::{CommandResult, Store, boards};

/// `POST /api/boards`: an unconfined admin only; `caller: None` is local
/// access to the data directory (seeding, tests).
pub async fn create(
    store: &Store,
    caller: Option<&Principal>,
    new: &NewBoard,
    now_ms: i64,
) -> CommandResult<Board> {
    let (caller, new) = (caller.cloned(), new.clone());
    store
        .run(move |tx| boards::create(tx, caller.as_ref(), &new, now_ms))
        .await
}

/// `PATCH /api/boards/{id}`.
pub async fn update(
    store: &Store,
    caller: &Principal,
    id: i64,
    patch: &BoardPatch,
    now_ms: i64,
) -> CommandResult<Board> {
    let (caller, patch) = (caller.clone(), patch.clone());
    store
        .run(move |tx| boards::update(tx, &caller, id, &patch, now_ms))
        .await
}

/// `POST /api/boards/{id}/lanes`.
pub async fn create_lane(
    store: &Store,
    caller: &Principal,
    board_id: i64,
    new: &NewLane,
) -> CommandResult<Lane> {
    let (caller, new) = (caller.clone(), new.clone());
    store
        .run(move |tx| boards::create_lane(tx, &caller, board_id, &new))
        .await
}

/// `PATCH /api/lanes/{id}`.
pub async fn update_lane(
    store: &Store,
    caller: &Principal,
    id: i64,
    patch: &LanePatch,
) -> CommandResult<Lane> {
    let (caller, patch) = (caller.clone(), patch.clone());
    store
        .run(move |tx| boards::update_lane(tx, &caller, id, &patch))
        .await
}

/// `DELETE /api/lanes/{id}`: only an empty lane.
pub async fn delete_lane(store: &Store, caller: &Principal, id: i64) -> CommandResult<()> {
    let caller = caller.clone();
    store
        .run(move |tx| boards::delete_lane(tx, &caller, id))
        .await
}
