//! Item commands that run on the writer: comments (more move here as
//! `store::items` moves onto the writer thread).

use crate::domain::Principal;
use crate::domain::item::NewComment;
use crate::store::model::Comment;
use crate::store::{CommandResult, Store, comments};

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
