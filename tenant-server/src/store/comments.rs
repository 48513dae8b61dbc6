//! Comments (plain, progress, checkpoint) and the handoff read.

use super::error::CommandResult;
use super::events::{self, NewEvent};
use super::items::{actor_for, load_visible, renew_lease};
use super::model::{Comment, CommentRow};
use crate::domain::Principal;
use crate::domain::event::EventType;
use crate::domain::item::NewComment;
use crate::domain::queue;
use serde::Serialize;
use serde_json::json;
use sqlx::{SqliteConnection, SqlitePool};

pub(crate) const SELECT_COMMENT: &str = "SELECT c.id, c.item_id, c.author_id, w.name AS author_name, w.kind AS author_kind, c.kind, c.body, \
     c.created_at FROM comments c JOIN workers w ON w.id = c.author_id";

/// Inserts a comment and its `comment.created` event in the caller's transaction.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    board_id: i64,
    item_id: i64,
    author_id: i64,
    comment: &NewComment,
    now_ms: i64,
) -> Result<Comment, sqlx::Error> {
    let id: i64 = sqlx::query_scalar("INSERT INTO comments (item_id, author_id, kind, body, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id")
        .bind(item_id)
        .bind(author_id)
        .bind(comment.kind.as_str())
        .bind(&comment.body)
        .bind(now_ms)
        .fetch_one(&mut *conn)
        .await?;
    events::append(
        conn,
        NewEvent {
            kind: EventType::CommentCreated,
            board_id,
            item_id: Some(item_id),
            actor_id: Some(author_id),
            at_ms: now_ms,
            data: json!({"comment_id": id, "kind": comment.kind}),
        },
    )
    .await?;
    let row: CommentRow = sqlx::query_as(&format!("{SELECT_COMMENT} WHERE c.id = ?"))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Comment::try_from(row)
}

pub async fn add(
    pool: &SqlitePool,
    caller: &Principal,
    item_id: i64,
    comment: &NewComment,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Comment> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (row, board) = load_visible(&mut tx, caller, item_id).await?;
    let is_holder = queue::check_holder_write(
        &actor_for(caller, board.id),
        &board.rules(),
        &row.state()?,
        fence,
        now_ms,
    )?;
    if is_holder {
        renew_lease(&mut tx, &board, caller, item_id, now_ms).await?;
    }
    let created = insert(
        &mut tx,
        board.id,
        item_id,
        caller.worker_id,
        comment,
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(created)
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
