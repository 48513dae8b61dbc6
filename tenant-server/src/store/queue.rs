//! The queue commands as the writer executes them: claim, claim-next,
//! heartbeat, release, move and lease expiry, each a synchronous function
//! over the writer's [`Tx`] (load, ask `domain::queue`, write the change,
//! its events and outbox rows, build the answer), plus the reads `allowed`
//! and the queue metrics on the reader pool. Edges call them through
//! `crate::commands::queue`, which hands them to the writer.

use super::boards::lanes_of;
use super::comments::Handoff;
use super::error::{CommandResult, not_found};
use super::items::SELECT_ITEM;
use super::model::{Board, Item, ItemRow};
use super::tx::{
    append_event, clear_claim, first_lane_with, grant_claim, held_on_board, invalid, item_event,
    lane_state, load_all_boards, load_lane, load_row, load_visible, reload, renew_lease, set_lane,
    set_lane_ending_claim, visible_board,
};
use super::writer::Tx;
use crate::domain::board::LaneRole;
use crate::domain::event::EventType;
use crate::domain::item::{CommentKind, ItemKind, NewComment};
use crate::domain::queue::{self, ClaimDecision, ClaimEffect};
use crate::domain::{DomainError, Principal, WorkerKind};
use serde::Serialize;
use serde_json::json;
use sqlx::{SqliteConnection, SqlitePool};

/// The answer to a claim: the item with its claim, and where the last
/// worker left off.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClaimedItem {
    #[serde(flatten)]
    pub item: Item,
    pub handoff: Handoff,
}

/// How a claim went, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    New,
    Renewed,
}

/// Records that a lapsed claim ended before anyone else takes the item.
fn expire_lapsed(tx: &Tx<'_>, row: &ItemRow, now_ms: i64) -> CommandResult<()> {
    if let Some(claim) = row.claim()?.filter(|c| !c.is_live(now_ms)) {
        // Cleared first, so the event's webhook payload shows the item free.
        clear_claim(tx, row.id)?;
        append_event(
            tx,
            &item_event(
                EventType::ItemClaimExpired,
                row.board_id,
                row.id,
                None,
                now_ms,
                json!({"holder": claim.worker, "token": claim.token, "lease_expired_at": super::model::Timestamp(claim.lease_expires_at_ms)}),
            ),
        )?;
    }
    Ok(())
}

/// Moves the item into the board's first `in_progress` lane (claim `start`).
fn start_work(
    tx: &Tx<'_>,
    board: &Board,
    caller: &Principal,
    row: &ItemRow,
    now_ms: i64,
) -> CommandResult<()> {
    if row.role()? == LaneRole::InProgress {
        return Ok(());
    }
    let lane = first_lane_with(tx, board.id, &[LaneRole::InProgress])?
        .ok_or_else(|| invalid("start", "the board has no in_progress lane"))?;
    let state = lane_state(tx, &lane)?;
    queue::check_enter_lane(&actor_for(caller, board.id), &state, row.lane_id)?;
    set_lane(tx, row.id, &lane, now_ms)?;
    append_event(
        tx,
        &item_event(
            EventType::ItemMoved,
            board.id,
            row.id,
            Some(caller.worker_id),
            now_ms,
            json!({"from_lane_id": row.lane_id, "to_lane_id": lane.id, "from": row.status, "to": lane.role}),
        ),
    )?;
    Ok(())
}

pub(crate) fn actor_for(caller: &Principal, board_id: i64) -> queue::Actor {
    super::items::actor_for(caller, board_id)
}

/// How a claim is made: moved to in_progress (`start`), fenced, and the
/// caller's live claims on the board when already counted.
#[derive(Debug, Clone, Copy, Default)]
struct ClaimOptions {
    start: bool,
    fence: Option<i64>,
    held: Option<i64>,
}

/// The body of a claim, shared by `claim` and `claim-next`; answers with
/// the claimed item and its handoff, read in the same transaction.
fn claim_in_tx(
    tx: &Tx<'_>,
    caller: &Principal,
    row: ItemRow,
    board: &Board,
    options: ClaimOptions,
    now_ms: i64,
) -> CommandResult<(ClaimedItem, ClaimOutcome)> {
    let ClaimOptions { start, fence, held } = options;
    let state = row.state()?;
    if fence.is_some() {
        queue::check_fence(fence, &state)?;
    }
    let held = match held {
        Some(held) => held,
        None => held_on_board(tx, caller.worker_id, board.id, now_ms)?,
    };
    let decision = queue::check_claim(
        &actor_for(caller, board.id),
        &board.rules(),
        &state,
        held,
        now_ms,
    )?;
    let outcome = match decision {
        ClaimDecision::Renew => {
            renew_lease(tx, board, caller, row.id, now_ms)?;
            ClaimOutcome::Renewed
        }
        ClaimDecision::New => {
            expire_lapsed(tx, &row, now_ms)?;
            grant_claim(tx, board, caller, row.id, now_ms)?;
            append_event(
                tx,
                &item_event(
                    EventType::ItemClaimed,
                    board.id,
                    row.id,
                    Some(caller.worker_id),
                    now_ms,
                    json!({"holder": caller.worker_ref(), "lease_ms": board.rules().lease_ms(caller.worker_kind)}),
                ),
            )?;
            ClaimOutcome::New
        }
    };
    if start {
        start_work(tx, board, caller, &row, now_ms)?;
    }
    let item = reload(tx, row.id, now_ms)?;
    let handoff = super::tx::handoff(tx, row.id)?;
    Ok((ClaimedItem { item, handoff }, outcome))
}

/// `POST /api/items/{id}/claim`.
pub fn claim(
    tx: &Tx<'_>,
    caller: &Principal,
    item_id: i64,
    start: bool,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<(ClaimedItem, ClaimOutcome)> {
    let (row, board) = load_visible(tx, caller, item_id)?;
    claim_in_tx(
        tx,
        caller,
        row,
        &board,
        ClaimOptions {
            start,
            fence,
            held: None,
        },
        now_ms,
    )
}

/// What a worker is looking for in `claim-next` and `allowed`.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub board_id: Option<i64>,
    pub kinds: Vec<ItemKind>,
    pub labels: Vec<String>,
}

/// A board's queue as `(priority, id)`, in the order `claim-next` takes
/// it, off the open-only queue indexes: every open item of the board, or
/// (`agents_only_ready`) only the agent-ready ones. Parameter: board id.
/// The queue's ordering clause is [`QUEUE_ORDER`].
pub(crate) fn queue_sql(agents_only_ready: bool) -> &'static str {
    if agents_only_ready {
        "SELECT i.priority, i.id FROM items i WHERE i.board_id = ? AND i.open = 1 AND i.agent_ready = 1"
    } else {
        "SELECT i.priority, i.id FROM items i WHERE i.board_id = ? AND i.open = 1"
    }
}

/// The order of a board's queue (see [`queue_sql`]).
pub(crate) const QUEUE_ORDER: &str = " ORDER BY i.priority, i.id";

/// The claimability predicate in SQL (the Rust twin is
/// `domain::queue::claimable`; a property test holds them equal): open
/// lane, no live claim, every blocker done, agent-ready when required.
/// Parameters: board id, now, then the filter's kinds and labels, then the limit.
pub(crate) fn candidate_sql(agents_only_ready: bool, filter: &QueueFilter) -> String {
    let mut sql = String::from(queue_sql(agents_only_ready));
    sql.push_str(
        " AND (i.claim_worker_id IS NULL OR i.lease_expires_at <= ?) AND NOT EXISTS (SELECT 1 FROM item_deps d \
         JOIN items bi ON bi.id = d.blocked_by_id WHERE d.item_id = i.id AND bi.status <> 'done')",
    );
    if !filter.kinds.is_empty() {
        sql.push_str(&format!(
            " AND i.kind IN ({})",
            vec!["?"; filter.kinds.len()].join(", ")
        ));
    }
    if !filter.labels.is_empty() {
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM json_each(i.labels) WHERE value IN ({}))",
            vec!["?"; filter.labels.len()].join(", ")
        ));
    }
    sql.push_str(QUEUE_ORDER);
    sql.push_str(" LIMIT ?");
    sql
}

/// Up to `limit` claimable items of one board, best first, read straight
/// off the open-items-only `(board_id, [agent_ready,] priority, id)` index (readers).
async fn candidates(
    conn: &mut SqliteConnection,
    board: &Board,
    kind: WorkerKind,
    filter: &QueueFilter,
    limit: i64,
    now_ms: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let sql = candidate_sql(kind == WorkerKind::Agent && board.agents_need_ready, filter);
    let mut query = sqlx::query_as::<_, (i64, i64)>(&sql)
        .bind(board.id)
        .bind(now_ms);
    for kind in &filter.kinds {
        query = query.bind(kind.as_str());
    }
    for label in &filter.labels {
        query = query.bind(label.clone());
    }
    query.bind(limit).fetch_all(conn).await
}

/// The best claimable item of one board on the writer, as (priority, id).
fn best_candidate(
    tx: &Tx<'_>,
    board: &Board,
    kind: WorkerKind,
    filter: &QueueFilter,
    now_ms: i64,
) -> rusqlite::Result<Option<(i64, i64)>> {
    use rusqlite::OptionalExtension;
    let sql = candidate_sql(kind == WorkerKind::Agent && board.agents_need_ready, filter);
    let mut params: Vec<rusqlite::types::Value> = vec![board.id.into(), now_ms.into()];
    params.extend(filter.kinds.iter().map(|k| k.as_str().to_owned().into()));
    params.extend(filter.labels.iter().map(|l| l.clone().into()));
    params.push(1_i64.into());
    tx.prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(params), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
}

/// `POST /api/claim-next`: the best claimable item, atomically claimed;
/// `None` when there is none.
pub fn claim_next(
    tx: &Tx<'_>,
    caller: &Principal,
    filter: &QueueFilter,
    start: bool,
    now_ms: i64,
) -> CommandResult<Option<(ClaimedItem, ClaimOutcome)>> {
    let boards = match filter.board_id.or(caller.board_id) {
        Some(id) => vec![visible_board(tx, caller, id)?],
        None => load_all_boards(tx)?,
    };
    // (priority, id) of the best candidate, its board's index, and the
    // caller's claims held there.
    let mut best: Option<((i64, i64), usize, i64)> = None;
    let mut at_limit: Option<(i64, i64)> = None;
    let mut open_boards = 0;
    for (index, board) in boards.iter().enumerate() {
        let actor = actor_for(caller, board.id);
        if board.locked && !actor.is_board_admin {
            if filter.board_id.is_some() {
                return Err(DomainError::BoardLocked.into());
            }
            continue;
        }
        let held = held_on_board(tx, caller.worker_id, board.id, now_ms)?;
        if held >= board.claim_limit {
            at_limit.get_or_insert((board.claim_limit, held));
            continue;
        }
        open_boards += 1;
        if let Some(candidate) = best_candidate(tx, board, caller.worker_kind, filter, now_ms)?
            && best.is_none_or(|(b, _, _)| candidate < b)
        {
            best = Some((candidate, index, held));
        }
    }
    let Some(((_, item_id), index, held)) = best else {
        if open_boards == 0
            && let Some((limit, held)) = at_limit
        {
            return Err(DomainError::ClaimLimitReached { limit, held }.into());
        }
        return Ok(None);
    };
    let row = load_row(tx, item_id)?.ok_or_else(|| not_found("item"))?;
    claim_in_tx(
        tx,
        caller,
        row,
        &boards[index],
        ClaimOptions {
            start,
            fence: None,
            held: Some(held),
        },
        now_ms,
    )
    .map(Some)
}

/// The boards the caller can take work from, in id order (readers).
async fn visible_boards(
    conn: &mut SqliteConnection,
    caller: &Principal,
    board_id: Option<i64>,
) -> CommandResult<Vec<Board>> {
    match board_id.or(caller.board_id) {
        Some(id) => {
            if !caller.can_see_board(id) {
                return Err(not_found("board"));
            }
            Ok(vec![
                super::boards::load_board(conn, id)
                    .await?
                    .ok_or_else(|| not_found("board"))?,
            ])
        }
        None => Ok(super::boards::load_all(conn).await?),
    }
}

/// `GET /api/allowed`: what the caller holds, then what it may claim now.
pub async fn allowed(
    pool: &SqlitePool,
    caller: &Principal,
    filter: &QueueFilter,
    limit: i64,
    now_ms: i64,
) -> CommandResult<Vec<Item>> {
    let mut conn = pool.acquire().await?;
    let boards = visible_boards(&mut conn, caller, filter.board_id).await?;
    let board_ids: Vec<i64> = boards.iter().map(|b| b.id).collect();
    let held: Vec<ItemRow> = sqlx::query_as(&format!(
        "{SELECT_ITEM} WHERE i.claim_worker_id = ? AND i.lease_expires_at > ? ORDER BY i.priority, i.id"
    ))
    .bind(caller.worker_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut items: Vec<Item> = Vec::new();
    for row in held.into_iter().filter(|r| board_ids.contains(&r.board_id)) {
        items.push(row.into_item(now_ms)?);
    }
    let mut pool_of: Vec<(i64, i64)> = Vec::new();
    for board in &boards {
        let actor = actor_for(caller, board.id);
        let held_here = items.iter().filter(|i| i.board_id == board.id).count() as i64;
        if (board.locked && !actor.is_board_admin) || held_here >= board.claim_limit {
            continue;
        }
        pool_of
            .extend(candidates(&mut conn, board, caller.worker_kind, filter, limit, now_ms).await?);
    }
    pool_of.sort_unstable();
    for (_, id) in pool_of
        .into_iter()
        .take((limit as usize).saturating_sub(items.len()))
    {
        if let Some(row) = super::items::load_row(&mut conn, id).await? {
            items.push(row.into_item(now_ms)?);
        }
    }
    items.truncate(limit as usize);
    Ok(items)
}

/// `POST /api/items/{id}/heartbeat`.
pub fn heartbeat(
    tx: &Tx<'_>,
    caller: &Principal,
    item_id: i64,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let (row, board) = load_visible(tx, caller, item_id)?;
    let state = row.state()?;
    queue::check_fence(fence, &state)?;
    queue::check_heartbeat(&actor_for(caller, board.id), &state, now_ms)?;
    renew_lease(tx, &board, caller, item_id, now_ms)?;
    reload(tx, item_id, now_ms)
}

/// Ends a claim that is released or expired; an item in progress goes back
/// to the first ready lane (or backlog) so it really is claimable.
fn return_to_queue(tx: &Tx<'_>, board: &Board, row: &ItemRow, now_ms: i64) -> CommandResult<()> {
    clear_claim(tx, row.id)?;
    if let Some(roles) = queue::lane_after_release(row.role()?)
        && let Some(lane) = first_lane_with(tx, board.id, &roles)?
    {
        set_lane(tx, row.id, &lane, now_ms)?;
    }
    Ok(())
}

/// `POST /api/items/{id}/release`: by the holder, or forced by a board admin.
pub fn release(
    tx: &Tx<'_>,
    caller: &Principal,
    item_id: i64,
    reason: Option<&str>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let (row, board) = load_visible(tx, caller, item_id)?;
    let state = row.state()?;
    queue::check_fence(fence, &state)?;
    let kind = queue::check_release(&actor_for(caller, board.id), &state)?;
    let holder = state.claim.as_ref().map(|c| c.worker.clone());
    return_to_queue(tx, &board, &row, now_ms)?;
    let after = load_row(tx, item_id)?.ok_or_else(|| not_found("item"))?;
    append_event(
        tx,
        &item_event(
            EventType::ItemReleased,
            board.id,
            item_id,
            Some(caller.worker_id),
            now_ms,
            json!({"holder": holder, "forced": kind == queue::ReleaseKind::Forced, "reason": reason,
                   "from_lane_id": row.lane_id, "lane_id": after.lane_id, "status": after.status}),
        ),
    )?;
    super::tx::announce_if_agent_ready(tx, &board, item_id, Some(caller.worker_id), now_ms)?;
    reload(tx, item_id, now_ms)
}

/// Where a move goes.
#[derive(Debug, Clone, Copy)]
pub enum MoveTarget {
    Lane(i64),
    Status(LaneRole),
}

/// `POST /api/items/{id}/move`.
pub fn move_item(
    tx: &Tx<'_>,
    caller: &Principal,
    item_id: i64,
    target: MoveTarget,
    note: Option<&str>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let (row, board) = load_visible(tx, caller, item_id)?;
    let state = row.state()?;
    queue::check_fence(fence, &state)?;
    let lane = match target {
        MoveTarget::Lane(id) => load_lane(tx, id)?
            .filter(|l| l.board_id == board.id)
            .ok_or_else(|| invalid("lane_id", "no such lane on this item's board"))?,
        MoveTarget::Status(role) => first_lane_with(tx, board.id, &[role])?
            .ok_or_else(|| invalid("status", format!("the board has no {} lane", role.as_str())))?,
    };
    let to = lane_state(tx, &lane)?;
    let held = held_on_board(tx, caller.worker_id, board.id, now_ms)?;
    let actor = actor_for(caller, board.id);
    let effect = queue::check_move(&actor, &board.rules(), &state, &to, held, now_ms)?;
    let is_holder = state
        .claim
        .as_ref()
        .is_some_and(|c| c.worker.id == caller.worker_id);
    if lane.id == row.lane_id {
        if is_holder {
            renew_lease(tx, &board, caller, item_id, now_ms)?;
        }
        return reload(tx, item_id, now_ms);
    }
    let claim_ended = effect == ClaimEffect::End;
    match effect {
        ClaimEffect::End => set_lane_ending_claim(tx, item_id, &lane, now_ms)?,
        ClaimEffect::ClaimForMover => {
            set_lane(tx, item_id, &lane, now_ms)?;
            expire_lapsed(tx, &row, now_ms)?;
            grant_claim(tx, &board, caller, item_id, now_ms)?;
        }
        ClaimEffect::Keep => {
            set_lane(tx, item_id, &lane, now_ms)?;
            if is_holder {
                renew_lease(tx, &board, caller, item_id, now_ms)?;
            }
        }
    }
    append_event(
        tx,
        &item_event(
            EventType::ItemMoved,
            board.id,
            item_id,
            Some(caller.worker_id),
            now_ms,
            json!({"from_lane_id": row.lane_id, "to_lane_id": lane.id, "from": row.status, "to": lane.role,
                   "claim_ended": claim_ended, "note": note}),
        ),
    )?;
    if effect == ClaimEffect::ClaimForMover {
        append_event(
            tx,
            &item_event(
                EventType::ItemClaimed,
                board.id,
                item_id,
                Some(caller.worker_id),
                now_ms,
                json!({"holder": caller.worker_ref(), "by_move": true}),
            ),
        )?;
    }
    if let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) {
        // A note on the way to blocked is the handoff for whoever resumes.
        let kind = if lane.role == LaneRole::Blocked {
            CommentKind::Checkpoint
        } else {
            CommentKind::Comment
        };
        let comment = NewComment::parse(note, Some(kind)).map_err(DomainError::Validation)?;
        super::tx::insert_comment(tx, board.id, item_id, caller.worker_id, &comment, now_ms)?;
    }
    if lane.role == LaneRole::Done {
        append_event(
            tx,
            &item_event(
                EventType::ItemDone,
                board.id,
                item_id,
                Some(caller.worker_id),
                now_ms,
                json!({"lane_id": lane.id}),
            ),
        )?;
        announce_unblocked(tx, &board, item_id, caller.worker_id, now_ms)?;
    }
    if lane.role.is_open() {
        super::tx::announce_if_agent_ready(tx, &board, item_id, Some(caller.worker_id), now_ms)?;
    }
    reload(tx, item_id, now_ms)
}

/// Items waiting on `done_id` may have just become claimable.
fn announce_unblocked(
    tx: &Tx<'_>,
    board: &Board,
    done_id: i64,
    actor_id: i64,
    now_ms: i64,
) -> CommandResult<()> {
    let waiting: Vec<i64> = tx
        .prepare_cached("SELECT item_id FROM item_deps WHERE blocked_by_id = ?")?
        .query_map([done_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in waiting {
        super::tx::announce_if_agent_ready(tx, board, id, Some(actor_id), now_ms)?;
    }
    Ok(())
}

/// Releases up to `batch` lapsed claims; returns their ids.
pub fn reap_expired(tx: &Tx<'_>, batch: i64, now_ms: i64) -> CommandResult<Vec<i64>> {
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM items WHERE claim_worker_id IS NOT NULL AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?",
        )?
        .query_map([now_ms, batch], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut boards: Vec<Board> = Vec::new();
    for &id in &ids {
        let Some(row) = load_row(tx, id)? else {
            continue;
        };
        let board = match boards.iter().find(|b| b.id == row.board_id) {
            Some(b) => b.clone(),
            None => {
                let b =
                    super::tx::load_board(tx, row.board_id)?.ok_or_else(|| not_found("board"))?;
                boards.push(b.clone());
                b
            }
        };
        if let Some(roles) = queue::lane_after_release(row.role()?)
            && let Some(lane) = first_lane_with(tx, board.id, &roles)?
        {
            set_lane(tx, id, &lane, now_ms)?;
        }
        expire_lapsed(tx, &row, now_ms)?;
        super::tx::announce_if_agent_ready(tx, &board, id, None, now_ms)?;
    }
    Ok(ids)
}

/// Queue depth per board and status, and WIP saturation per limited lane,
/// for `/metrics`.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// (board key, status, count)
    pub depth: Vec<(String, String, i64)>,
    /// (board key, lane name, items, limit)
    pub wip: Vec<(String, i64, String, i64, i64)>,
}

pub async fn stats(pool: &SqlitePool) -> Result<QueueStats, sqlx::Error> {
    let depth: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT b.key, i.status, COUNT(*) FROM items i JOIN boards b ON b.id = i.board_id GROUP BY b.key, i.status",
    )
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let boards: Vec<(i64, String)> = sqlx::query_as("SELECT id, key FROM boards")
        .fetch_all(&mut *conn)
        .await?;
    let mut wip = Vec::new();
    for (id, key) in boards {
        for lane in lanes_of(&mut conn, id).await? {
            if let Some(limit) = lane.wip_limit {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE lane_id = ?")
                    .bind(lane.id)
                    .fetch_one(&mut *conn)
                    .await?;
                wip.push((key.clone(), lane.id, lane.name, count, limit));
            }
        }
    }
    Ok(QueueStats { depth, wip })
}
