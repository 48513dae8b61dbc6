//! Boards and lanes: creation with default lanes, settings, lane edits
//! (on the writer, executing what `domain::board` decides), and the reads.

use super::error::{CommandResult, not_found};
use super::model::{Board, BoardRow, Lane, LaneRow};
use super::tx::{board_lanes, load_board as load_board_tx, load_lane as load_lane_tx};
use super::writer::Tx;
use crate::domain::Principal;
use crate::domain::auth::check_may_create_board;
use crate::domain::board::{
    self, BoardPatch, DEFAULT_LANES, LanePatch, LaneSettings, NewBoard, NewLane,
};
use rusqlite::{OptionalExtension, params};
use sqlx::{SqliteConnection, SqlitePool};

pub(crate) const SELECT_BOARD: &str = "SELECT id, name, key, locked, claim_limit, agent_lease_seconds, human_lease_seconds, \
     agents_need_ready, created_at, updated_at FROM boards";
pub(crate) const SELECT_LANE: &str =
    "SELECT id, board_id, name, role, position, wip_limit, who FROM lanes";

pub(crate) async fn load_board(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<Board>, sqlx::Error> {
    let row: Option<BoardRow> = sqlx::query_as(&format!("{SELECT_BOARD} WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Board::from))
}

/// Every board, in id order.
pub(crate) async fn load_all(conn: &mut SqliteConnection) -> Result<Vec<Board>, sqlx::Error> {
    let rows: Vec<BoardRow> = sqlx::query_as(&format!("{SELECT_BOARD} ORDER BY id"))
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Board::from).collect())
}

/// A board the caller can see, or `404`.
pub async fn get(pool: &SqlitePool, caller: &Principal, id: i64) -> CommandResult<Board> {
    if !caller.can_see_board(id) {
        return Err(not_found("board"));
    }
    let mut conn = pool.acquire().await?;
    load_board(&mut conn, id)
        .await?
        .ok_or_else(|| not_found("board"))
}

pub async fn list(pool: &SqlitePool, caller: &Principal) -> Result<Vec<Board>, sqlx::Error> {
    let rows: Vec<BoardRow> = match caller.board_id {
        Some(board) => {
            sqlx::query_as(&format!("{SELECT_BOARD} WHERE id = ?"))
                .bind(board)
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query_as(&format!("{SELECT_BOARD} ORDER BY id"))
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows.into_iter().map(Board::from).collect())
}

pub(crate) async fn lanes_of(
    conn: &mut SqliteConnection,
    board_id: i64,
) -> Result<Vec<Lane>, sqlx::Error> {
    let rows: Vec<LaneRow> = sqlx::query_as(&format!(
        "{SELECT_LANE} WHERE board_id = ? ORDER BY position, id"
    ))
    .bind(board_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Lane::try_from).collect()
}

pub async fn list_lanes(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
) -> CommandResult<Vec<Lane>> {
    let mut conn = pool.acquire().await?;
    if !caller.can_see_board(board_id) || load_board(&mut conn, board_id).await?.is_none() {
        return Err(not_found("board"));
    }
    Ok(lanes_of(&mut conn, board_id).await?)
}

/// (id, name) of each lane, as the lane rules take them.
fn named(lanes: &[Lane]) -> Vec<(i64, &str)> {
    lanes.iter().map(|l| (l.id, l.name.as_str())).collect()
}

/// Rewrites positions as 0..n in the given order.
fn renumber(tx: &Tx<'_>, order: &[i64]) -> rusqlite::Result<()> {
    let mut set = tx.prepare_cached("UPDATE lanes SET position = ? WHERE id = ?")?;
    for (position, id) in order.iter().enumerate() {
        set.execute(params![position as i64, id])?;
    }
    Ok(())
}

/// A new board with the default lanes: by an unconfined admin, or with
/// local access to the data directory (`caller: None`: the CLI, seeding).
pub(crate) fn create(
    tx: &Tx<'_>,
    caller: Option<&Principal>,
    new: &NewBoard,
    now_ms: i64,
) -> CommandResult<Board> {
    if let Some(caller) = caller {
        check_may_create_board(caller)?;
    }
    let taken = tx
        .prepare_cached("SELECT id FROM boards WHERE key = ?")?
        .query_row([&new.key], |r| r.get::<_, i64>(0))
        .optional()?;
    board::check_key_free(taken.is_some())?;
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO boards (name, key, created_at, updated_at) VALUES (?, ?, ?, ?)",
        )?
        .insert(params![new.name, new.key, now_ms, now_ms])?;
    let mut lane = tx.prepare_cached(
        "INSERT INTO lanes (board_id, name, role, position, wip_limit, who) VALUES (?, ?, ?, ?, ?, 'any')",
    )?;
    for (position, (name, role, wip)) in DEFAULT_LANES.iter().enumerate() {
        lane.execute(params![id, name, role.as_str(), position as i64, wip])?;
    }
    load_board_tx(tx, id)?.ok_or_else(|| not_found("board"))
}

/// Applies a settings patch (board admins of the board).
pub(crate) fn update(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
    patch: &BoardPatch,
    now_ms: i64,
) -> CommandResult<Board> {
    if !caller.is_board_admin(id) {
        return Err(not_found("board"));
    }
    let current = load_board_tx(tx, id)?.ok_or_else(|| not_found("board"))?;
    let (name, rules) = patch.apply(&current.name, &current.rules());
    tx.prepare_cached(
        "UPDATE boards SET name = ?, locked = ?, claim_limit = ?, agent_lease_seconds = ?, human_lease_seconds = ?, \
         agents_need_ready = ?, updated_at = ? WHERE id = ?",
    )?
    .execute(params![
        name,
        rules.locked,
        rules.claim_limit,
        rules.agent_lease_seconds,
        rules.human_lease_seconds,
        rules.agents_need_ready,
        now_ms,
        id
    ])?;
    // Unlocking or relaxing a rule can make items claimable: long-polling
    // workers should look again.
    tx.mark_changed();
    load_board_tx(tx, id)?.ok_or_else(|| not_found("board"))
}

pub(crate) fn create_lane(
    tx: &Tx<'_>,
    caller: &Principal,
    board_id: i64,
    new: &NewLane,
) -> CommandResult<Lane> {
    if !caller.is_board_admin(board_id) {
        return Err(not_found("board"));
    }
    load_board_tx(tx, board_id)?.ok_or_else(|| not_found("board"))?;
    let lanes = board_lanes(tx, board_id)?;
    board::check_lane_fits(&named(&lanes), &new.name, None)?;
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO lanes (board_id, name, role, position, wip_limit, who) VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .insert(params![
                board_id,
                new.name,
                new.role.as_str(),
                lanes.len() as i64,
                new.wip_limit,
                new.who.as_str()
            ])?;
    let ids: Vec<i64> = lanes.iter().map(|l| l.id).collect();
    renumber(tx, &board::place_lane(&ids, id, new.position))?;
    load_lane_tx(tx, id)?.ok_or_else(|| not_found("lane"))
}

pub(crate) fn update_lane(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
    patch: &LanePatch,
) -> CommandResult<Lane> {
    let lane = load_lane_tx(tx, id)?
        .filter(|l| caller.is_board_admin(l.board_id))
        .ok_or_else(|| not_found("lane"))?;
    let lanes = board_lanes(tx, lane.board_id)?;
    let current = LaneSettings {
        name: lane.name.clone(),
        role: lane.role,
        wip_limit: lane.wip_limit,
        who: lane.who,
    };
    let change = board::plan_lane_change(id, &current, &named(&lanes), patch)?;
    let new = &change.settings;
    tx.prepare_cached("UPDATE lanes SET name = ?, role = ?, wip_limit = ?, who = ? WHERE id = ?")?
        .execute(params![
            new.name,
            new.role.as_str(),
            new.wip_limit,
            new.who.as_str(),
            id
        ])?;
    if change.restatus_items {
        // Items carry their lane's role.
        tx.prepare_cached("UPDATE items SET status = ?, open = ? WHERE lane_id = ?")?
            .execute(params![new.role.as_str(), new.role.is_open(), id])?;
    }
    if let Some(order) = &change.order {
        renumber(tx, order)?;
    }
    // A new role, limit or `who` can make its items claimable.
    tx.mark_changed();
    load_lane_tx(tx, id)?.ok_or_else(|| not_found("lane"))
}

pub(crate) fn delete_lane(tx: &Tx<'_>, caller: &Principal, id: i64) -> CommandResult<()> {
    let lane = load_lane_tx(tx, id)?
        .filter(|l| caller.is_board_admin(l.board_id))
        .ok_or_else(|| not_found("lane"))?;
    // `items_by_lane` makes this a count of the lane's own rows.
    let items: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM items WHERE lane_id = ?")?
        .query_row([id], |r| r.get(0))?;
    board::check_lane_removable(items)?;
    tx.prepare_cached("DELETE FROM lanes WHERE id = ?")?
        .execute([id])?;
    let order: Vec<i64> = board_lanes(tx, lane.board_id)?
        .iter()
        .map(|l| l.id)
        .collect();
    renumber(tx, &order)?;
    Ok(())
}
