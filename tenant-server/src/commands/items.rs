//! Item commands, on the writer: create, edit, comment.

use crate::domain::Principal;
use crate::domain::item::{ItemPatch, NewComment, NewItem};
use crate::store::model::{Comment, Item};
use crate::store::{CommandResult, Store, comments, items};

/// `POST /api/items/{id}/comments` (and the MCP progress note).
pub async fn add_comment(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    comment: &NewComment,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Comment> {
    let caller = caller.clone();
    let comment = comment.clone();
    store
        .run(move |tx| comments::add(tx, &caller, item_id, &comment, fence, now_ms))
        .await
}

/// `POST /api/boards/{id}/items` (and the MCP create tools).
pub async fn create(
    store: &Store,
    caller: &Principal,
    board_id: i64,
    new: &NewItem,
    now_ms: i64,
) -> CommandResult<Item> {
    let caller = caller.clone();
    let new = new.clone();
    store
        .run(move |tx| items::create(tx, &caller, board_id, &new, now_ms))
        .await
}

/// `PATCH /api/items/{id}` (and the MCP edit tools): `If-Match` and the
/// fencing token are checked inside the command.
pub async fn update(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    patch: &ItemPatch,
    if_match: Option<i64>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let caller = caller.clone();
    let patch = patch.clone();
    store
        .run(move |tx| items::update(tx, &caller, item_id, &patch, if_match, fence, now_ms))
        .await
}
