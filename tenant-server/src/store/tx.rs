//! The statements commands run on the writer thread: loads, the claim
//! columns, lanes, the history append (with its webhook outbox rows) and
//! comments. Synchronous, on the writer's [`Tx`], through the connection's
//! statement cache; they execute what `domain` decided and decide nothing.

use super::boards::{SELECT_BOARD, SELECT_LANE};
use super::comments::{Handoff, SELECT_COMMENT};
use super::error::{CommandResult, not_found};
use super::events::NewEvent;
use super::items::SELECT_ITEM;
use super::model::{Board, BoardRow, Comment, CommentRow, Item, ItemRow, Lane, LaneRow, Timestamp};
use super::writer::Tx;
use crate::domain::board::LaneRole;
use crate::domain::event::EventType;
use crate::domain::item::{CommentKind, NewComment};
use crate::domain::queue::{self, LaneState};
use crate::domain::{DomainError, Principal};
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use std::sync::LazyLock;

/// The hot loads' SQL, built once: a `format!` per call would allocate
/// and copy the long item query on every load.
static ITEM_BY_ID: LazyLock<String> = LazyLock::new(|| format!("{SELECT_ITEM} WHERE i.id = ?"));
static BOARD_BY_ID: LazyLock<String> = LazyLock::new(|| format!("{SELECT_BOARD} WHERE id = ?"));
static LANES_OF_BOARD: LazyLock<String> =
    LazyLock::new(|| format!("{SELECT_LANE} WHERE board_id = ? ORDER BY position, id"));

pub(crate) fn load_row(tx: &Tx<'_>, id: i64) -> rusqlite::Result<Option<ItemRow>> {
    tx.prepare_cached(&ITEM_BY_ID)?
        .query_row([id], ItemRow::from_sqlite)
        .optional()
}

pub(crate) fn load_board(tx: &Tx<'_>, id: i64) -> rusqlite::Result<Option<Board>> {
    Ok(tx
        .prepare_cached(&BOARD_BY_ID)?
        .query_row([id], BoardRow::from_sqlite)
        .optional()?
        .map(Board::from))
}

pub(crate) fn load_all_boards(tx: &Tx<'_>) -> rusqlite::Result<Vec<Board>> {
    tx.prepare_cached(&format!("{SELECT_BOARD} ORDER BY id"))?
        .query_map([], BoardRow::from_sqlite)?
        .map(|r| r.map(Board::from))
        .collect()
}

/// Loads an item the caller can see, with its board; `404` otherwise.
pub(crate) fn load_visible(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
) -> CommandResult<(ItemRow, Board)> {
    let row = load_row(tx, id)?
        .filter(|r| caller.can_see_board(r.board_id))
        .ok_or_else(|| not_found("item"))?;
    let board = load_board(tx, row.board_id)?.ok_or_else(|| not_found("board"))?;
    Ok((row, board))
}

/// The item as the command left it, for its answer (read inside the
/// transaction: no second hop after the commit).
pub(crate) fn reload(tx: &Tx<'_>, id: i64, now_ms: i64) -> CommandResult<Item> {
    Ok(load_row(tx, id)?
        .ok_or_else(|| not_found("item"))?
        .into_item(now_ms)?)
}

pub(crate) fn load_lane(tx: &Tx<'_>, id: i64) -> CommandResult<Option<Lane>> {
    let row = tx
        .prepare_cached(&format!("{SELECT_LANE} WHERE id = ?"))?
        .query_row([id], LaneRow::from_sqlite)
        .optional()?;
    Ok(row.map(Lane::try_from).transpose()?)
}

/// The board's lanes in position order.
pub(crate) fn board_lanes(tx: &Tx<'_>, board_id: i64) -> CommandResult<Vec<Lane>> {
    let rows: Vec<LaneRow> = tx
        .prepare_cached(&LANES_OF_BOARD)?
        .query_map([board_id], LaneRow::from_sqlite)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        .map(Lane::try_from)
        .collect::<Result<_, _>>()?)
}

/// The first lane (by position) with one of `roles`, in order of preference.
pub(crate) fn first_lane_with(
    tx: &Tx<'_>,
    board_id: i64,
    roles: &[LaneRole],
) -> CommandResult<Option<Lane>> {
    let lanes = board_lanes(tx, board_id)?;
    Ok(roles
        .iter()
        .find_map(|role| lanes.iter().find(|l| l.role == *role).cloned()))
}

/// The caller's live claims on one board (index `items_claims`).
pub(crate) fn held_on_board(
    tx: &Tx<'_>,
    worker_id: i64,
    board_id: i64,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "SELECT COUNT(*) FROM items WHERE claim_worker_id = ? AND board_id = ? AND lease_expires_at > ?",
    )?
    .query_row(params![worker_id, board_id, now_ms], |r| r.get(0))
}

pub(crate) fn lane_state(tx: &Tx<'_>, lane: &Lane) -> rusqlite::Result<LaneState> {
    // Counting is only needed against a limit; done lanes can be huge.
    let count = match lane.wip_limit {
        Some(_) => tx
            .prepare_cached("SELECT COUNT(*) FROM items WHERE lane_id = ?")?
            .query_row([lane.id], |r| r.get(0))?,
        None => 0,
    };
    Ok(LaneState {
        id: lane.id,
        role: lane.role,
        wip_limit: lane.wip_limit,
        who: lane.who,
        count,
    })
}

/// Puts the item in `lane`; its lane is one of its own fields, so `version` grows.
pub(crate) fn set_lane(
    tx: &Tx<'_>,
    item_id: i64,
    lane: &Lane,
    now_ms: i64,
) -> rusqlite::Result<()> {
    write_lane(tx, item_id, lane, now_ms, false)
}

/// `set_lane` and `clear_claim` in one row write (a move that ends the
/// claim: the row and its indexes are rewritten once, not twice).
pub(crate) fn set_lane_ending_claim(
    tx: &Tx<'_>,
    item_id: i64,
    lane: &Lane,
    now_ms: i64,
) -> rusqlite::Result<()> {
    write_lane(tx, item_id, lane, now_ms, true)
}

fn write_lane(
    tx: &Tx<'_>,
    item_id: i64,
    lane: &Lane,
    now_ms: i64,
    end_claim: bool,
) -> rusqlite::Result<()> {
    let sql = if end_claim {
        "UPDATE items SET lane_id = ?, status = ?, open = ?, version = version + 1, updated_at = ?, \
         claim_worker_id = NULL, claimed_at = NULL, lease_expires_at = NULL, claim_token = NULL WHERE id = ?"
    } else {
        "UPDATE items SET lane_id = ?, status = ?, open = ?, version = version + 1, updated_at = ? WHERE id = ?"
    };
    tx.prepare_cached(sql)?.execute(params![
        lane.id,
        lane.role.as_str(),
        lane.role.is_open(),
        now_ms,
        item_id
    ])?;
    Ok(())
}

/// A new claim: the fencing token is the item's next sequence number.
pub(crate) fn grant_claim(
    tx: &Tx<'_>,
    board: &Board,
    caller: &Principal,
    item_id: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE items SET claim_worker_id = ?, claimed_at = ?, lease_expires_at = ?, claim_seq = claim_seq + 1, \
         claim_token = claim_seq + 1 WHERE id = ?",
    )?
    .execute(params![
        caller.worker_id,
        now_ms,
        now_ms + board.rules().lease_ms(caller.worker_kind),
        item_id
    ])?;
    Ok(())
}

pub(crate) fn clear_claim(tx: &Tx<'_>, item_id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE items SET claim_worker_id = NULL, claimed_at = NULL, lease_expires_at = NULL, claim_token = NULL WHERE id = ?",
    )?
    .execute([item_id])?;
    Ok(())
}

/// Renews the caller's live claim; a lapsed one is lost (see `check_heartbeat`).
pub(crate) fn renew_lease(
    tx: &Tx<'_>,
    board: &Board,
    caller: &Principal,
    item_id: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE items SET lease_expires_at = ? WHERE id = ? AND claim_worker_id = ? AND lease_expires_at > ?",
    )?
    .execute(params![
        now_ms + board.rules().lease_ms(caller.worker_kind),
        item_id,
        caller.worker_id,
        now_ms
    ])?;
    Ok(())
}

/// Appends to the history and writes the event's webhook outbox rows, in
/// the command's transaction; marks the command as a change.
///
/// Ids come from `last_insert_rowid` (rusqlite's `Statement::insert`), not
/// `RETURNING`: SQLite gathers `RETURNING` rows in an ephemeral table, a
/// B-tree and page cache built and torn down per statement, which the
/// writer's profile showed at about 8 % of its time for the event appends.
pub(crate) fn append_event(tx: &Tx<'_>, event: &NewEvent) -> rusqlite::Result<i64> {
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO events (board_id, item_id, type, actor_id, at, data) VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .insert(params![
                event.board_id,
                event.item_id,
                event.kind.as_str(),
                event.actor_id,
                event.at_ms,
                event.data.to_string()
            ])?;
    tx.mark_changed();
    enqueue_webhooks(tx, id, event)?;
    Ok(id)
}

/// Appends a board notice to the history: an entry on the board's feed
/// (`webhook.disabled`) that is not one of API.md's event types, so no
/// webhook subscribes to it and it writes no outbox row. Marks the command
/// as a change, as `append_event` does.
pub(crate) fn append_notice(
    tx: &Tx<'_>,
    board_id: i64,
    kind: &'static str,
    at_ms: i64,
    data: &serde_json::Value,
) -> rusqlite::Result<i64> {
    let id = tx
        .prepare_cached(
            "INSERT INTO events (board_id, item_id, type, actor_id, at, data) VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .insert(params![board_id, None::<i64>, kind, None::<i64>, at_ms, data.to_string()])?;
    tx.mark_changed();
    Ok(id)
}

/// Outbox rows for every enabled webhook of the board subscribed to the event.
fn enqueue_webhooks(tx: &Tx<'_>, event_id: i64, event: &NewEvent) -> rusqlite::Result<()> {
    let subscribed: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM webhooks WHERE board_id = ? AND enabled = 1 \
             AND (events = '[]' OR EXISTS (SELECT 1 FROM json_each(webhooks.events) WHERE value = ?))",
        )?
        .query_map(params![event.board_id, event.kind.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if subscribed.is_empty() {
        return Ok(());
    }
    tx.mark_outbox();
    let payload = webhook_payload(tx, event_id, event)?.to_string();
    let mut insert = tx.prepare_cached(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, message_id, type, payload, status, next_attempt_at, created_at) \
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
    )?;
    for webhook_id in subscribed {
        insert.execute(params![
            webhook_id,
            event_id,
            format!("msg_{event_id}_{webhook_id}"),
            event.kind.as_str(),
            payload,
            event.at_ms,
            event.at_ms
        ])?;
    }
    Ok(())
}

/// The thin Standard Webhooks body (same shape as `webhooks::payload`).
fn webhook_payload(
    tx: &Tx<'_>,
    event_id: i64,
    event: &NewEvent,
) -> rusqlite::Result<serde_json::Value> {
    let mut data = json!({
        "event_id": event_id,
        "board_id": event.board_id,
        "item_id": event.item_id,
        "actor_id": event.actor_id,
    });
    if let Some(item_id) = event.item_id {
        let item = tx
            .prepare_cached(
                "SELECT b.key || '-' || i.number, i.lane_id, i.version, i.status, i.agent_ready, i.claim_worker_id, i.lease_expires_at \
                 FROM items i JOIN boards b ON b.id = i.board_id WHERE i.id = ?",
            )?
            .query_row([item_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .optional()?;
        if let Some((key, lane_id, version, status, agent_ready, holder, lease)) = item {
            data["item"] = json!({
                "key": key, "lane_id": lane_id, "status": status, "version": version, "agent_ready": agent_ready,
                "claim": holder.map(|worker_id| json!({"worker_id": worker_id, "lease_expires_at": lease.map(Timestamp)})),
            });
        }
    }
    data["details"] = event.data.clone();
    Ok(json!({"type": event.kind.as_str(), "timestamp": Timestamp(event.at_ms), "data": data}))
}

/// An event about one item.
pub(crate) fn item_event(
    kind: EventType,
    board_id: i64,
    item_id: i64,
    actor_id: Option<i64>,
    at_ms: i64,
    data: serde_json::Value,
) -> NewEvent {
    NewEvent {
        kind,
        board_id,
        item_id: Some(item_id),
        actor_id,
        at_ms,
        data,
    }
}

/// Appends `item.agent-ready` if the item, as it now is, can be claimed by agents.
pub(crate) fn announce_if_agent_ready(
    tx: &Tx<'_>,
    board: &Board,
    id: i64,
    actor_id: Option<i64>,
    now_ms: i64,
) -> CommandResult<()> {
    let row = load_row(tx, id)?.ok_or_else(|| not_found("item"))?;
    let claimed = row.claim()?.is_some_and(|c| c.is_live(now_ms));
    if queue::claimable_by_agents(
        &board.rules(),
        row.role()?,
        row.agent_ready,
        row.open_blockers,
        claimed,
    ) {
        append_event(
            tx,
            &item_event(
                EventType::ItemAgentReady,
                board.id,
                id,
                actor_id,
                now_ms,
                json!({"lane_id": row.lane_id, "status": row.status, "priority": row.priority}),
            ),
        )?;
    }
    Ok(())
}

/// Inserts a comment and its `comment.created` event.
pub(crate) fn insert_comment(
    tx: &Tx<'_>,
    board_id: i64,
    item_id: i64,
    author_id: i64,
    comment: &NewComment,
    now_ms: i64,
) -> CommandResult<Comment> {
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO comments (item_id, author_id, kind, body, created_at) VALUES (?, ?, ?, ?, ?)",
        )?
        .insert(params![item_id, author_id, comment.kind.as_str(), comment.body, now_ms])?;
    append_event(
        tx,
        &item_event(
            EventType::CommentCreated,
            board_id,
            item_id,
            Some(author_id),
            now_ms,
            json!({"comment_id": id, "kind": comment.kind}),
        ),
    )?;
    let row = tx
        .prepare_cached(&format!("{SELECT_COMMENT} WHERE c.id = ?"))?
        .query_row([id], CommentRow::from_sqlite)?;
    Ok(Comment::try_from(row)?)
}

fn latest_comment(tx: &Tx<'_>, item_id: i64, kind: CommentKind) -> CommandResult<Option<Comment>> {
    let row = tx
        .prepare_cached(&format!(
            "{SELECT_COMMENT} WHERE c.item_id = ? AND c.kind = ? ORDER BY c.id DESC LIMIT 1"
        ))?
        .query_row(params![item_id, kind.as_str()], CommentRow::from_sqlite)
        .optional()?;
    Ok(row.map(Comment::try_from).transpose()?)
}

/// Where the last worker stopped: its latest checkpoint and progress notes.
pub(crate) fn handoff(tx: &Tx<'_>, item_id: i64) -> CommandResult<Handoff> {
    Ok(Handoff {
        checkpoint: latest_comment(tx, item_id, CommentKind::Checkpoint)?,
        progress: latest_comment(tx, item_id, CommentKind::Progress)?,
    })
}

/// `404` unless the caller may see the board.
pub(crate) fn visible_board(tx: &Tx<'_>, caller: &Principal, id: i64) -> CommandResult<Board> {
    if !caller.can_see_board(id) {
        return Err(not_found("board"));
    }
    load_board(tx, id)?.ok_or_else(|| not_found("board"))
}

/// A domain validation error as a command error (shorthand).
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> super::CommandError {
    DomainError::validation(field, message).into()
}
