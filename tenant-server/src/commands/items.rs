//! Item commands, on the writer: create, edit, comment, and an agent's
//! report of a defect or subtask.

use crate::domain::item::{ItemKind, ItemPatch, NewComment, NewItem, NewItemInput};
use crate::domain::{DomainError, Principal};
use crate::store::model::{Comment, Item};
use crate::store::tx as store_tx;
use crate::store::writer::Tx;
use crate::store::{CommandResult, Store, comments, items, queue};

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

/// What an agent found while working on an item (the MCP `report_defect`).
#[derive(Debug, Clone)]
pub struct Report {
    /// The item being worked on.
    pub origin_id: i64,
    /// A subtask of the origin, or a defect found in it.
    pub subtask: bool,
    pub title: String,
    pub body: Option<String>,
    pub priority: Option<i64>,
    pub labels: Vec<String>,
    pub agent_ready: bool,
    /// A defect that blocks the origin until it is done.
    pub blocking: bool,
    /// The caller's claim token on the origin, if they hold it.
    pub fence: Option<i64>,
}

/// Files a subtask of, or a defect found in, an item, and then either
/// links a blocking defect to it or renews the caller's lease on it: one
/// command, so a failure (the link refused, say) leaves nothing behind.
/// Returns the new item and the origin as it is now when it changed.
pub async fn report_defect(
    store: &Store,
    caller: &Principal,
    report: Report,
    now_ms: i64,
) -> CommandResult<(Item, Option<Item>)> {
    let caller = caller.clone();
    store
        .run(move |tx| file_report(tx, &caller, &report, now_ms))
        .await
}

fn file_report(
    tx: &Tx<'_>,
    caller: &Principal,
    report: &Report,
    now_ms: i64,
) -> CommandResult<(Item, Option<Item>)> {
    let (row, _) = store_tx::load_visible(tx, caller, report.origin_id)?;
    let origin = row.into_item(now_ms)?;
    if report.subtask && report.blocking {
        return Err(DomainError::validation(
            "blocking",
            "only a defect can block the item; a subtask is linked by parent_id",
        )
        .into());
    }
    let mut labels = report.labels.clone();
    let (kind, parent_id) = if report.subtask {
        (ItemKind::Subtask, Some(origin.id))
    } else {
        labels.push(format!("found-in:{}", origin.key));
        (ItemKind::Defect, None)
    };
    let new = NewItem::parse(NewItemInput {
        title: &report.title,
        body: report.body.as_deref(),
        kind: Some(kind),
        parent_id,
        priority: report.priority,
        labels: Some(&labels),
        agent_ready: Some(report.agent_ready),
        blocked_by: None,
        lane_id: None,
    })?;
    let created = items::create(tx, caller, origin.board_id, &new, now_ms)?;
    let holds = origin
        .claim
        .as_ref()
        .is_some_and(|c| c.worker.id == caller.worker_id);
    let origin_now = if report.blocking {
        let mut blockers = origin.blocked_by.clone();
        blockers.push(created.id);
        let patch = ItemPatch {
            blocked_by: Some(blockers),
            ..ItemPatch::default()
        };
        Some(items::update(
            tx,
            caller,
            origin.id,
            &patch,
            None,
            report.fence,
            now_ms,
        )?)
    } else if holds {
        // Renewing the lease is a courtesy: if it is refused (a stale
        // fence, say), the report still stands, without the renewal.
        tx.execute_batch("SAVEPOINT renew")?;
        match queue::heartbeat(tx, caller, origin.id, report.fence, now_ms) {
            Ok(item) => {
                tx.execute_batch("RELEASE renew")?;
                Some(item)
            }
            Err(_) => {
                tx.execute_batch("ROLLBACK TO renew; RELEASE renew")?;
                None
            }
        }
    } else {
        None
    };
    Ok((created, origin_now))
}
