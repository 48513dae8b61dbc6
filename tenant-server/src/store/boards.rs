//! Boards and lanes: creation with default lanes, settings, lane edits.

use super::error::{CommandResult, not_found};
use super::model::{Board, BoardRow, Lane, LaneRow};
use crate::domain::board::{BoardPatch, DEFAULT_LANES, LanePatch, NewBoard, NewLane};
use crate::domain::{DomainError, Principal};
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

pub async fn create(pool: &SqlitePool, board: &NewBoard, now_ms: i64) -> CommandResult<Board> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM boards WHERE key = ?")
        .bind(&board.key)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(DomainError::validation("key", "already used by another board").into());
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO boards (name, key, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(&board.name)
    .bind(&board.key)
    .bind(now_ms)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    for (position, (name, role, wip)) in DEFAULT_LANES.iter().enumerate() {
        sqlx::query("INSERT INTO lanes (board_id, name, role, position, wip_limit, who) VALUES (?, ?, ?, ?, ?, 'any')")
            .bind(id)
            .bind(*name)
            .bind(role.as_str())
            .bind(position as i64)
            .bind(*wip)
            .execute(&mut *tx)
            .await?;
    }
    let created = load_board(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("board"))?;
    tx.commit().await?;
    Ok(created)
}

pub async fn update(
    pool: &SqlitePool,
    caller: &Principal,
    id: i64,
    patch: &BoardPatch,
    now_ms: i64,
) -> CommandResult<Board> {
    if !caller.is_board_admin(id) {
        return Err(not_found("board"));
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let current = load_board(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("board"))?;
    sqlx::query(
        "UPDATE boards SET name = ?, locked = ?, claim_limit = ?, agent_lease_seconds = ?, human_lease_seconds = ?, \
         agents_need_ready = ?, updated_at = ? WHERE id = ?",
    )
    .bind(patch.name.as_ref().unwrap_or(&current.name))
    .bind(patch.locked.unwrap_or(current.locked))
    .bind(patch.claim_limit.unwrap_or(current.claim_limit))
    .bind(patch.agent_lease_seconds.unwrap_or(current.agent_lease_seconds))
    .bind(patch.human_lease_seconds.unwrap_or(current.human_lease_seconds))
    .bind(patch.agents_need_ready.unwrap_or(current.agents_need_ready))
    .bind(now_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let updated = load_board(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("board"))?;
    tx.commit().await?;
    Ok(updated)
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

pub(crate) async fn load_lane(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<Lane>, sqlx::Error> {
    let row: Option<LaneRow> = sqlx::query_as(&format!("{SELECT_LANE} WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Lane::try_from).transpose()
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

/// Rewrites positions as 0..n in the given order.
async fn renumber(conn: &mut SqliteConnection, lanes: &[i64]) -> Result<(), sqlx::Error> {
    for (position, id) in lanes.iter().enumerate() {
        sqlx::query("UPDATE lanes SET position = ? WHERE id = ?")
            .bind(position as i64)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn create_lane(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
    lane: &NewLane,
) -> CommandResult<Lane> {
    if !caller.is_board_admin(board_id) {
        return Err(not_found("board"));
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    load_board(&mut tx, board_id)
        .await?
        .ok_or_else(|| not_found("board"))?;
    let mut order: Vec<i64> = lanes_of(&mut tx, board_id)
        .await?
        .iter()
        .map(|l| l.id)
        .collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO lanes (board_id, name, role, position, wip_limit, who) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(board_id)
    .bind(&lane.name)
    .bind(lane.role.as_str())
    .bind(order.len() as i64)
    .bind(lane.wip_limit)
    .bind(lane.who.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let at = lane
        .position
        .map_or(order.len(), |p| (p as usize).min(order.len()));
    order.insert(at, id);
    renumber(&mut tx, &order).await?;
    let created = load_lane(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("lane"))?;
    tx.commit().await?;
    Ok(created)
}

pub async fn update_lane(
    pool: &SqlitePool,
    caller: &Principal,
    id: i64,
    patch: &LanePatch,
) -> CommandResult<Lane> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let lane = load_lane(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("lane"))?;
    if !caller.is_board_admin(lane.board_id) {
        return Err(not_found("lane"));
    }
    let role = patch.role.unwrap_or(lane.role);
    sqlx::query("UPDATE lanes SET name = ?, role = ?, wip_limit = ?, who = ? WHERE id = ?")
        .bind(patch.name.as_ref().unwrap_or(&lane.name))
        .bind(role.as_str())
        .bind(patch.wip_limit.unwrap_or(lane.wip_limit))
        .bind(patch.who.unwrap_or(lane.who).as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if role != lane.role {
        // Items carry their lane's role; keep them in step.
        sqlx::query("UPDATE items SET status = ?, open = ? WHERE lane_id = ?")
            .bind(role.as_str())
            .bind(role.is_open())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(position) = patch.position {
        let mut order: Vec<i64> = lanes_of(&mut tx, lane.board_id)
            .await?
            .iter()
            .map(|l| l.id)
            .filter(|l| *l != id)
            .collect();
        order.insert((position as usize).min(order.len()), id);
        renumber(&mut tx, &order).await?;
    }
    let updated = load_lane(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("lane"))?;
    tx.commit().await?;
    Ok(updated)
}

pub async fn delete_lane(pool: &SqlitePool, caller: &Principal, id: i64) -> CommandResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let lane = load_lane(&mut tx, id)
        .await?
        .ok_or_else(|| not_found("lane"))?;
    if !caller.is_board_admin(lane.board_id) {
        return Err(not_found("lane"));
    }
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE lane_id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if items > 0 {
        return Err(DomainError::validation(
            "lane",
            format!("holds {items} item(s); move them out first"),
        )
        .into());
    }
    sqlx::query("DELETE FROM lanes WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let order: Vec<i64> = lanes_of(&mut tx, lane.board_id)
        .await?
        .iter()
        .map(|l| l.id)
        .collect();
    renumber(&mut tx, &order).await?;
    tx.commit().await?;
    Ok(())
}
