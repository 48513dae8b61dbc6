//! The queue commands: claim, claim-next, heartbeat, release, move, the
//! allowed list and lease expiry. Each write is one transaction on the
//! single writer connection: load, ask `domain::queue`, write the change
//! and its events, commit.

use super::Store;
use super::boards::{first_lane_with, lanes_of, load_board, load_lane};
use super::comments::{self, Handoff};
use super::error::{CommandResult, not_found};
use super::events::{self, NewEvent};
use super::items::{
    SELECT_ITEM, actor_for, announce_if_agent_ready, load_row, load_visible, reload, renew_lease,
};
use super::model::{Board, Item, ItemRow, Lane};
use crate::domain::board::LaneRole;
use crate::domain::event::EventType;
use crate::domain::item::{CommentKind, ItemKind, NewComment};
use crate::domain::queue::{self, ClaimDecision, ClaimEffect, LaneState};
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

async fn held_on_board(
    conn: &mut SqliteConnection,
    worker_id: i64,
    board_id: i64,
    now_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE claim_worker_id = ? AND board_id = ? AND lease_expires_at > ?")
        .bind(worker_id)
        .bind(board_id)
        .bind(now_ms)
        .fetch_one(conn)
        .await
}

async fn lane_state(conn: &mut SqliteConnection, lane: &Lane) -> Result<LaneState, sqlx::Error> {
    // Counting is only needed against a limit; done lanes can be huge.
    let count = match lane.wip_limit {
        Some(_) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE lane_id = ?")
                .bind(lane.id)
                .fetch_one(&mut *conn)
                .await?
        }
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

fn event(
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

/// Puts the item in `lane`; its lane is one of its own fields, so `version` grows.
async fn set_lane(
    conn: &mut SqliteConnection,
    item_id: i64,
    lane: &Lane,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE items SET lane_id = ?, status = ?, open = ?, version = version + 1, updated_at = ? WHERE id = ?")
        .bind(lane.id)
        .bind(lane.role.as_str())
        .bind(lane.role.is_open())
        .bind(now_ms)
        .bind(item_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A new claim: the fencing token is the item's next sequence number.
async fn grant_claim(
    conn: &mut SqliteConnection,
    board: &Board,
    caller: &Principal,
    item_id: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE items SET claim_worker_id = ?, claimed_at = ?, lease_expires_at = ?, claim_seq = claim_seq + 1, \
         claim_token = claim_seq + 1 WHERE id = ?",
    )
    .bind(caller.worker_id)
    .bind(now_ms)
    .bind(now_ms + board.rules().lease_ms(caller.worker_kind))
    .bind(item_id)
    .execute(conn)
    .await?;
    Ok(())
}

async fn clear_claim(conn: &mut SqliteConnection, item_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE items SET claim_worker_id = NULL, claimed_at = NULL, lease_expires_at = NULL, claim_token = NULL WHERE id = ?")
        .bind(item_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that a lapsed claim ended before anyone else takes the item.
async fn expire_lapsed(
    conn: &mut SqliteConnection,
    row: &ItemRow,
    now_ms: i64,
) -> CommandResult<()> {
    if let Some(claim) = row.claim()?.filter(|c| !c.is_live(now_ms)) {
        // Cleared first, so the event's webhook payload shows the item free.
        clear_claim(conn, row.id).await?;
        events::append(
            conn,
            event(
                EventType::ItemClaimExpired,
                row.board_id,
                row.id,
                None,
                now_ms,
                json!({"holder": claim.worker, "token": claim.token, "lease_expired_at": super::model::Timestamp(claim.lease_expires_at_ms)}),
            ),
        )
        .await?;
    }
    Ok(())
}

/// Moves the item into the board's first `in_progress` lane (claim `start`).
async fn start_work(
    conn: &mut SqliteConnection,
    board: &Board,
    caller: &Principal,
    row: &ItemRow,
    now_ms: i64,
) -> CommandResult<()> {
    if row.role()? == LaneRole::InProgress {
        return Ok(());
    }
    let lane = first_lane_with(conn, board.id, &[LaneRole::InProgress])
        .await?
        .ok_or_else(|| DomainError::validation("start", "the board has no in_progress lane"))?;
    let state = lane_state(conn, &lane).await?;
    queue::check_enter_lane(&actor_for(caller, board.id), &state, row.lane_id)?;
    set_lane(conn, row.id, &lane, now_ms).await?;
    events::append(
        conn,
        event(
            EventType::ItemMoved,
            board.id,
            row.id,
            Some(caller.worker_id),
            now_ms,
            json!({"from_lane_id": row.lane_id, "to_lane_id": lane.id, "from": row.status, "to": lane.role}),
        ),
    )
    .await?;
    Ok(())
}

/// How a claim is made: moved to in_progress (`start`), fenced, and the
/// caller's live claims on the board when already counted.
#[derive(Debug, Clone, Copy, Default)]
struct ClaimOptions {
    start: bool,
    fence: Option<i64>,
    held: Option<i64>,
}

/// The body of a claim, shared by `claim` and `claim-next`.
async fn claim_in_tx(
    conn: &mut SqliteConnection,
    caller: &Principal,
    row: ItemRow,
    board: &Board,
    options: ClaimOptions,
    now_ms: i64,
) -> CommandResult<ClaimOutcome> {
    let ClaimOptions { start, fence, held } = options;
    let state = row.state()?;
    if fence.is_some() {
        queue::check_fence(fence, &state)?;
    }
    let held = match held {
        Some(held) => held,
        None => held_on_board(conn, caller.worker_id, board.id, now_ms).await?,
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
            renew_lease(conn, board, caller, row.id, now_ms).await?;
            ClaimOutcome::Renewed
        }
        ClaimDecision::New => {
            expire_lapsed(conn, &row, now_ms).await?;
            grant_claim(conn, board, caller, row.id, now_ms).await?;
            events::append(
                conn,
                event(
                    EventType::ItemClaimed,
                    board.id,
                    row.id,
                    Some(caller.worker_id),
                    now_ms,
                    json!({"holder": caller.worker_ref(), "lease_ms": board.rules().lease_ms(caller.worker_kind)}),
                ),
            )
            .await?;
            ClaimOutcome::New
        }
    };
    if start {
        start_work(conn, board, caller, &row, now_ms).await?;
    }
    Ok(outcome)
}

/// The answer to a claim, read after the commit from a reader connection
/// so the single writer is free for the next command sooner.
async fn claimed_view(store: &Store, item_id: i64, now_ms: i64) -> CommandResult<ClaimedItem> {
    let mut conn = store.reader.acquire().await?;
    let item = reload(&mut conn, item_id, now_ms).await?;
    let handoff = comments::handoff(&mut conn, item_id).await?;
    Ok(ClaimedItem { item, handoff })
}

/// An item as a command left it, read after the commit (see `claimed_view`).
async fn committed(store: &Store, item_id: i64, now_ms: i64) -> CommandResult<Item> {
    let mut conn = store.reader.acquire().await?;
    reload(&mut conn, item_id, now_ms).await
}

/// `POST /api/items/{id}/claim`.
pub async fn claim(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    start: bool,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<(ClaimedItem, ClaimOutcome)> {
    let mut tx = store.writer.begin().await?;
    let (row, board) = load_visible(&mut tx, caller, item_id).await?;
    let outcome = claim_in_tx(
        &mut tx,
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
    .await?;
    tx.commit().await?;
    Ok((claimed_view(store, item_id, now_ms).await?, outcome))
}

/// What a worker is looking for in `claim-next` and `allowed`.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub board_id: Option<i64>,
    pub kinds: Vec<ItemKind>,
    pub labels: Vec<String>,
}

/// The boards the caller can take work from, in id order.
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
                load_board(conn, id)
                    .await?
                    .ok_or_else(|| not_found("board"))?,
            ])
        }
        None => Ok(super::boards::load_all(conn).await?),
    }
}

/// Up to `limit` claimable items of one board, best first, read straight
/// off the `(board_id, open, [agent_ready,] priority, id)` index.
async fn candidates(
    conn: &mut SqliteConnection,
    board: &Board,
    kind: WorkerKind,
    filter: &QueueFilter,
    limit: i64,
    now_ms: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let agents_only_ready = kind == WorkerKind::Agent && board.agents_need_ready;
    let mut sql =
        String::from("SELECT i.priority, i.id FROM items i WHERE i.board_id = ? AND i.open = 1");
    if agents_only_ready {
        sql.push_str(" AND i.agent_ready = 1");
    }
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
    sql.push_str(" ORDER BY i.priority, i.id LIMIT ?");
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

/// `POST /api/claim-next`: the best claimable item, atomically claimed;
/// `None` when there is none.
pub async fn claim_next(
    store: &Store,
    caller: &Principal,
    filter: &QueueFilter,
    start: bool,
    now_ms: i64,
) -> CommandResult<Option<(ClaimedItem, ClaimOutcome)>> {
    let mut tx = store.writer.begin().await?;
    let boards = visible_boards(&mut tx, caller, filter.board_id).await?;
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
        let held = held_on_board(&mut tx, caller.worker_id, board.id, now_ms).await?;
        if held >= board.claim_limit {
            at_limit.get_or_insert((board.claim_limit, held));
            continue;
        }
        open_boards += 1;
        if let Some(&candidate) = candidates(&mut tx, board, caller.worker_kind, filter, 1, now_ms)
            .await?
            .first()
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
    let row = load_row(&mut tx, item_id)
        .await?
        .ok_or_else(|| not_found("item"))?;
    let board = &boards[index];
    let outcome = claim_in_tx(
        &mut tx,
        caller,
        row,
        board,
        ClaimOptions {
            start,
            fence: None,
            held: Some(held),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(Some((claimed_view(store, item_id, now_ms).await?, outcome)))
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
        if let Some(row) = load_row(&mut conn, id).await? {
            items.push(row.into_item(now_ms)?);
        }
    }
    items.truncate(limit as usize);
    Ok(items)
}

/// `POST /api/items/{id}/heartbeat`.
pub async fn heartbeat(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let mut tx = store.writer.begin().await?;
    let (row, board) = load_visible(&mut tx, caller, item_id).await?;
    let state = row.state()?;
    queue::check_fence(fence, &state)?;
    queue::check_heartbeat(&actor_for(caller, board.id), &state, now_ms)?;
    renew_lease(&mut tx, &board, caller, item_id, now_ms).await?;
    tx.commit().await?;
    committed(store, item_id, now_ms).await
}

/// Ends a claim that is released or expired; an item in progress goes back
/// to the first ready lane (or backlog) so it really is claimable.
async fn return_to_queue(
    conn: &mut SqliteConnection,
    board: &Board,
    row: &ItemRow,
    now_ms: i64,
) -> CommandResult<()> {
    clear_claim(conn, row.id).await?;
    if let Some(roles) = queue::lane_after_release(row.role()?)
        && let Some(lane) = first_lane_with(conn, board.id, &roles).await?
    {
        set_lane(conn, row.id, &lane, now_ms).await?;
    }
    Ok(())
}

/// `POST /api/items/{id}/release`: by the holder, or forced by a board admin.
pub async fn release(
    store: &Store,
    caller: &Principal,
    item_id: i64,
    reason: Option<&str>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let mut tx = store.writer.begin().await?;
    let (row, board) = load_visible(&mut tx, caller, item_id).await?;
    let state = row.state()?;
    queue::check_fence(fence, &state)?;
    let kind = queue::check_release(&actor_for(caller, board.id), &state)?;
    let holder = state.claim.as_ref().map(|c| c.worker.clone());
    return_to_queue(&mut tx, &board, &row, now_ms).await?;
    let after = load_row(&mut tx, item_id)
        .await?
        .ok_or_else(|| not_found("item"))?;
    events::append(
        &mut tx,
        event(
            EventType::ItemReleased,
            board.id,
            item_id,
            Some(caller.worker_id),
            now_ms,
            json!({"holder": holder, "forced": kind == queue::ReleaseKind::Forced, "reason": reason,
                   "from_lane_id": row.lane_id, "lane_id": after.lane_id, "status": after.status}),
        ),
    )
    .await?;
    announce_if_agent_ready(&mut tx, &board, item_id, Some(caller.worker_id), now_ms).await?;
    tx.commit().await?;
    committed(store, item_id, now_ms).await
}

/// Where a move goes.
#[derive(Debug, Clone, Copy)]
pub enum MoveTarget {
    Lane(i64),
    Status(LaneRole),
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
    let mut tx = store.writer.begin().await?;
    let (row, board) = load_visible(&mut tx, caller, item_id).await?;
    let state = row.state()?;
    queue::check_fence(fence, &state)?;
    let lane = match target {
        MoveTarget::Lane(id) => load_lane(&mut tx, id)
            .await?
            .filter(|l| l.board_id == board.id)
            .ok_or_else(|| {
                DomainError::validation("lane_id", "no such lane on this item's board")
            })?,
        MoveTarget::Status(role) => first_lane_with(&mut tx, board.id, &[role])
            .await?
            .ok_or_else(|| {
                DomainError::validation(
                    "status",
                    format!("the board has no {} lane", role.as_str()),
                )
            })?,
    };
    let to = lane_state(&mut tx, &lane).await?;
    let held = held_on_board(&mut tx, caller.worker_id, board.id, now_ms).await?;
    let actor = actor_for(caller, board.id);
    let effect = queue::check_move(&actor, &board.rules(), &state, &to, held, now_ms)?;
    let is_holder = state
        .claim
        .as_ref()
        .is_some_and(|c| c.worker.id == caller.worker_id);
    if lane.id == row.lane_id {
        if is_holder {
            renew_lease(&mut tx, &board, caller, item_id, now_ms).await?;
        }
        tx.commit().await?;
        return committed(store, item_id, now_ms).await;
    }
    set_lane(&mut tx, item_id, &lane, now_ms).await?;
    let claim_ended = effect == ClaimEffect::End;
    match effect {
        ClaimEffect::End => clear_claim(&mut tx, item_id).await?,
        ClaimEffect::ClaimForMover => {
            expire_lapsed(&mut tx, &row, now_ms).await?;
            grant_claim(&mut tx, &board, caller, item_id, now_ms).await?;
        }
        ClaimEffect::Keep if is_holder => {
            renew_lease(&mut tx, &board, caller, item_id, now_ms).await?
        }
        ClaimEffect::Keep => {}
    }
    events::append(
        &mut tx,
        event(
            EventType::ItemMoved,
            board.id,
            item_id,
            Some(caller.worker_id),
            now_ms,
            json!({"from_lane_id": row.lane_id, "to_lane_id": lane.id, "from": row.status, "to": lane.role,
                   "claim_ended": claim_ended, "note": note}),
        ),
    )
    .await?;
    if effect == ClaimEffect::ClaimForMover {
        events::append(
            &mut tx,
            event(
                EventType::ItemClaimed,
                board.id,
                item_id,
                Some(caller.worker_id),
                now_ms,
                json!({"holder": caller.worker_ref(), "by_move": true}),
            ),
        )
        .await?;
    }
    if let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) {
        // A note on the way to blocked is the handoff for whoever resumes.
        let kind = if lane.role == LaneRole::Blocked {
            CommentKind::Checkpoint
        } else {
            CommentKind::Comment
        };
        let comment = NewComment::parse(note, Some(kind)).map_err(DomainError::Validation)?;
        comments::insert(
            &mut tx,
            board.id,
            item_id,
            caller.worker_id,
            &comment,
            now_ms,
        )
        .await?;
    }
    if lane.role == LaneRole::Done {
        events::append(
            &mut tx,
            event(
                EventType::ItemDone,
                board.id,
                item_id,
                Some(caller.worker_id),
                now_ms,
                json!({"lane_id": lane.id}),
            ),
        )
        .await?;
        announce_unblocked(&mut tx, &board, item_id, caller.worker_id, now_ms).await?;
    }
    if lane.role.is_open() {
        announce_if_agent_ready(&mut tx, &board, item_id, Some(caller.worker_id), now_ms).await?;
    }
    tx.commit().await?;
    committed(store, item_id, now_ms).await
}

/// Items waiting on `done_id` may have just become claimable.
async fn announce_unblocked(
    conn: &mut SqliteConnection,
    board: &Board,
    done_id: i64,
    actor_id: i64,
    now_ms: i64,
) -> CommandResult<()> {
    let waiting: Vec<i64> =
        sqlx::query_scalar("SELECT item_id FROM item_deps WHERE blocked_by_id = ?")
            .bind(done_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in waiting {
        announce_if_agent_ready(conn, board, id, Some(actor_id), now_ms).await?;
    }
    Ok(())
}

/// Releases up to `batch` lapsed claims in one transaction; returns how many.
pub async fn reap_expired(pool: &SqlitePool, batch: i64, now_ms: i64) -> CommandResult<Vec<i64>> {
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM items WHERE claim_worker_id IS NOT NULL AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?",
    )
    .bind(now_ms)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut boards: Vec<Board> = Vec::new();
    for &id in &ids {
        let Some(row) = load_row(&mut tx, id).await? else {
            continue;
        };
        let board = match boards.iter().find(|b| b.id == row.board_id) {
            Some(b) => b.clone(),
            None => {
                let b = load_board(&mut tx, row.board_id)
                    .await?
                    .ok_or_else(|| not_found("board"))?;
                boards.push(b.clone());
                b
            }
        };
        if let Some(roles) = queue::lane_after_release(row.role()?)
            && let Some(lane) = first_lane_with(&mut tx, board.id, &roles).await?
        {
            set_lane(&mut tx, id, &lane, now_ms).await?;
        }
        expire_lapsed(&mut tx, &row, now_ms).await?;
        announce_if_agent_ready(&mut tx, &board, id, None, now_ms).await?;
    }
    tx.commit().await?;
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
