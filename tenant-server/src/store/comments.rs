//! Comments (plain, progress, checkpoint) and the handoff read.

use super::error::CommandResult;
use super::items::{actor_for, load_visible};
use super::model::{Comment, CommentRow};
use super::writer::Tx;
use crate::domain::Principal;
use crate::domain::item::NewComment;
use crate::domain::queue;
use serde::Serialize;
use sqlx::SqlitePool;

pub(crate) const SELECT_COMMENT: &str = "SELECT c.id, c.item_id, c.author_id, w.name AS author_name, w.kind AS author_kind, c.kind, c.body, \
     c.created_at FROM comments c JOIN workers w ON w.id = c.author_id";

/// `POST /api/items/{id}/comments`, on the writer: a holder's comment
/// renews its lease.
pub fn add(
    tx: &Tx<'_>,
    caller: &Principal,
    item_id: i64,
    comment: &NewComment,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Comment> {
    let (row, board) = super::tx::load_visible(tx, caller, item_id)?;
    let is_holder = queue::check_holder_write(
        &actor_for(caller, board.id),
        &board.rules(),
        &row.state()?,
        fence,
        now_ms,
    )?;
    if is_holder {
        super::tx::renew_lease(tx, &board, caller, item_id, now_ms)?;
    }
    super::tx::insert_comment(tx, board.id, item_id, caller.worker_id, comment, now_ms)
}

pub async fn list(
    pool: &SqlitePool,
    caller: &Principal,
    item_id: i64,
    after: i64,
    limit: i64,
) -> CommandResult<Vec<Comment>> {
    let mut conn = pool.acquire().await?;
    load_visible(&mut conn, caller, item_id).await?;
    let rows: Vec<CommentRow> = sqlx::query_as(&format!(
        "{SELECT_COMMENT} WHERE c.item_id = ? AND c.id > ? ORDER BY c.id LIMIT ?"
    ))
    .bind(item_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(Comment::try_from)
        .collect::<Result<_, _>>()?)
}

/// Where the last worker stopped: its latest checkpoint and progress notes.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Handoff {
    pub checkpoint: Option<Comment>,
    pub progress: Option<Comment>,
}
