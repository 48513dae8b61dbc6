//! Items: creation, edits (with `If-Match`), lists, and dependency checks.

use super::boards::load_board;
use super::error::{CommandResult, not_found};
use super::events::NewEvent;
use super::model::{Board, Item, ItemRow};
use super::writer::Tx;
use crate::domain::board::LaneRole;
use crate::domain::event::EventType;
use crate::domain::item::{ItemKind, ItemPatch, NewItem};
use crate::domain::queue::{self, Actor};
use crate::domain::{DomainError, Principal};
use serde_json::json;
use sqlx::{SqliteConnection, SqlitePool};

/// The columns of [`ItemRow`]; append `WHERE …` to use.
pub(crate) const SELECT_ITEM: &str = "SELECT i.id, i.board_id, b.key AS board_key, i.number, i.lane_id, i.status, i.kind, \
     i.parent_id, i.title, i.body, i.priority, i.labels, i.agent_ready, i.claim_worker_id, w.name AS claim_worker_name, \
     w.kind AS claim_worker_kind, i.claimed_at, i.lease_expires_at, i.claim_token, i.version, i.created_at, i.updated_at, \
     (SELECT json_group_array(d.blocked_by_id) FROM item_deps d WHERE d.item_id = i.id) AS blocked_by, \
     (SELECT COUNT(*) FROM item_deps d JOIN items bi ON bi.id = d.blocked_by_id \
        WHERE d.item_id = i.id AND bi.status <> 'done') AS open_blockers, \
     (SELECT CASE WHEN s.state = 'unlinked' THEN NULL WHEN s.item_id IS NOT NULL THEN json_object('provider', \
        substr(s.repo_key, 1, instr(s.repo_key, '|') - 1), 'url', s.url, 'number', s.number, 'state', \
        CASE WHEN s.state = 'synced' AND EXISTS (SELECT 1 FROM sync_outbox o WHERE o.item_id = i.id) THEN 'pending' ELSE s.state END, \
        'error', s.error) \
      WHEN l.board_id IS NOT NULL THEN json_object('provider', l.provider, 'state', 'pending') END \
      FROM (SELECT 1) LEFT JOIN sync_items s ON s.item_id = i.id LEFT JOIN sync_links l ON l.board_id = i.board_id AND l.enabled = 1) AS sync \
     FROM items i JOIN boards b ON b.id = i.board_id LEFT JOIN workers w ON w.id = i.claim_worker_id";

pub(crate) async fn load_row(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<ItemRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_ITEM} WHERE i.id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Loads an item the caller can see, with its board; `404` otherwise.
pub(crate) async fn load_visible(
    conn: &mut SqliteConnection,
    caller: &Principal,
    id: i64,
) -> CommandResult<(ItemRow, Board)> {
    let row = load_row(conn, id)
        .await?
        .filter(|r| caller.can_see_board(r.board_id))
        .ok_or_else(|| not_found("item"))?;
    let board = load_board(conn, row.board_id)
        .await?
        .ok_or_else(|| not_found("board"))?;
    Ok((row, board))
}

pub(crate) fn actor_for(caller: &Principal, board_id: i64) -> Actor {
    Actor {
        worker_id: caller.worker_id,
        kind: caller.worker_kind,
        is_board_admin: caller.is_board_admin(board_id),
    }
}

pub async fn get(
    pool: &SqlitePool,
    caller: &Principal,
    id: i64,
    now_ms: i64,
) -> CommandResult<Item> {
    let mut conn = pool.acquire().await?;
    let (row, _) = load_visible(&mut conn, caller, id).await?;
    Ok(row.into_item(now_ms)?)
}

/// `blocked_by` must name other items of the same board, without cycles.
fn check_blockers(tx: &Tx<'_>, board_id: i64, item_id: i64, blockers: &[i64]) -> CommandResult<()> {
    use rusqlite::OptionalExtension;
    for &blocker in blockers {
        if blocker == item_id {
            return Err(
                DomainError::validation("blocked_by", "an item cannot block itself").into(),
            );
        }
        check_on_board(tx, board_id, "blocked_by", blocker)?;
        // A cycle appears if the blocker already (transitively) waits for this item.
        let cycle: Option<i64> = tx
            .prepare_cached(
                "WITH RECURSIVE waits(id) AS (SELECT ? UNION SELECT d.blocked_by_id FROM item_deps d JOIN waits ON d.item_id = waits.id) \
                 SELECT 1 FROM waits WHERE id = ? LIMIT 1",
            )?
            .query_row([blocker, item_id], |r| r.get(0))
            .optional()?;
        if cycle.is_some() {
            return Err(DomainError::validation(
                "blocked_by",
                format!("item {blocker} already waits for this item"),
            )
            .into());
        }
    }
    Ok(())
}

fn check_parent(tx: &Tx<'_>, board_id: i64, item_id: i64, parent: i64) -> CommandResult<()> {
    use rusqlite::OptionalExtension;
    check_on_board(tx, board_id, "parent_id", parent)?;
    let cycle: Option<i64> = tx
        .prepare_cached(
            "WITH RECURSIVE up(id) AS (SELECT ? UNION SELECT i.parent_id FROM items i JOIN up ON i.id = up.id WHERE i.parent_id IS NOT NULL) \
             SELECT 1 FROM up WHERE id = ? LIMIT 1",
        )?
        .query_row([parent, item_id], |r| r.get(0))
        .optional()?;
    if cycle.is_some() {
        return Err(
            DomainError::validation("parent_id", "an item cannot be its own ancestor").into(),
        );
    }
    Ok(())
}

fn replace_blockers(tx: &Tx<'_>, item_id: i64, blockers: &[i64]) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM item_deps WHERE item_id = ?")?
        .execute([item_id])?;
    let mut insert = tx
        .prepare_cached("INSERT OR IGNORE INTO item_deps (item_id, blocked_by_id) VALUES (?, ?)")?;
    for &blocker in blockers {
        insert.execute([item_id, blocker])?;
    }
    Ok(())
}

/// Same board or a validation error naming `field` (writer side of
/// `check_parent` / `check_blockers` for a new item, which cannot be in a
/// cycle yet).
fn check_on_board(
    tx: &Tx<'_>,
    board_id: i64,
    field: &'static str,
    other: i64,
) -> CommandResult<()> {
    use rusqlite::OptionalExtension;
    let board: Option<i64> = tx
        .prepare_cached("SELECT board_id FROM items WHERE id = ?")?
        .query_row([other], |r| r.get(0))
        .optional()?;
    if board != Some(board_id) {
        return Err(
            DomainError::validation(field, format!("no item {other} on this board")).into(),
        );
    }
    Ok(())
}

/// `POST /api/boards/{id}/items`, on the writer.
pub fn create(
    tx: &Tx<'_>,
    caller: &Principal,
    board_id: i64,
    new: &NewItem,
    now_ms: i64,
) -> CommandResult<Item> {
    let board = super::tx::visible_board(tx, caller, board_id)?;
    let actor = actor_for(caller, board_id);
    queue::check_unlocked(&actor, &board.rules())?;
    let lane = match new.lane_id {
        Some(lane_id) => {
            let lane = super::tx::load_lane(tx, lane_id)?.filter(|l| l.board_id == board_id);
            let lane = lane
                .ok_or_else(|| DomainError::validation("lane_id", "no such lane on this board"))?;
            if !lane.role.is_open() {
                return Err(DomainError::validation(
                    "lane_id",
                    "new items go to a backlog or ready lane",
                )
                .into());
            }
            lane
        }
        None => {
            let preference: &[LaneRole] = if new.agent_ready {
                &[LaneRole::Ready, LaneRole::Backlog]
            } else {
                &[LaneRole::Backlog, LaneRole::Ready]
            };
            super::tx::first_lane_with(tx, board_id, preference)?.ok_or_else(|| {
                DomainError::validation("lane_id", "the board has no backlog or ready lane")
            })?
        }
    };
    if let Some(parent) = new.parent_id {
        check_on_board(tx, board_id, "parent_id", parent)?;
    }
    for &blocker in &new.blocked_by {
        check_on_board(tx, board_id, "blocked_by", blocker)?;
    }
    // Read, then bump: `UPDATE … RETURNING` would build an ephemeral
    // table per call (the single writer makes the two steps atomic).
    let number: i64 = tx
        .prepare_cached("SELECT next_number FROM boards WHERE id = ?")?
        .query_row([board_id], |r| r.get(0))?;
    tx.prepare_cached("UPDATE boards SET next_number = next_number + 1 WHERE id = ?")?
        .execute([board_id])?;
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO items (board_id, number, lane_id, status, open, kind, parent_id, title, body, priority, labels, agent_ready, \
             created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .insert(rusqlite::params![
                board_id,
                number,
                lane.id,
                lane.role.as_str(),
                lane.role.is_open(),
                new.kind.as_str(),
                new.parent_id,
                new.title,
                new.body,
                new.priority,
                serde_json::to_string(&new.labels).unwrap_or_else(|_| "[]".into()),
                new.agent_ready,
                caller.worker_id,
                now_ms,
                now_ms
            ])?;
    let mut insert_dep = tx
        .prepare_cached("INSERT OR IGNORE INTO item_deps (item_id, blocked_by_id) VALUES (?, ?)")?;
    for &blocker in &new.blocked_by {
        insert_dep.execute([id, blocker])?;
    }
    super::tx::append_event(
        tx,
        &NewEvent {
            kind: EventType::ItemCreated,
            board_id,
            item_id: Some(id),
            actor_id: Some(caller.worker_id),
            at_ms: now_ms,
            data: created_data(&lane, new),
        },
    )?;
    super::tx::announce_if_agent_ready(tx, &board, id, Some(caller.worker_id), now_ms)?;
    super::tx::reload(tx, id, now_ms)
}

/// The `item.created` payload; `blocked_by` when it has dependencies (flow
/// analytics replay them to count time waiting for open dependencies).
fn created_data(lane: &super::model::Lane, new: &NewItem) -> serde_json::Value {
    let mut data = json!({"lane_id": lane.id, "status": lane.role, "kind": new.kind, "title": new.title, "priority": new.priority});
    if !new.blocked_by.is_empty() {
        data["blocked_by"] = json!(new.blocked_by);
    }
    data
}

/// `PATCH /api/items/{id}`: only changed fields count; `version` grows
/// once per effective edit.
pub fn update(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
    patch: &ItemPatch,
    if_match: Option<i64>,
    fence: Option<i64>,
    now_ms: i64,
) -> CommandResult<Item> {
    let (row, board) = super::tx::load_visible(tx, caller, id)?;
    let actor = actor_for(caller, board.id);
    let is_holder =
        queue::check_holder_write(&actor, &board.rules(), &row.state()?, fence, now_ms)?;
    if let Some(expected) = if_match
        && expected != row.version
    {
        return Err(DomainError::VersionMismatch {
            current: row.version,
            expected,
        }
        .into());
    }
    let before = row.clone().into_item(now_ms)?;
    if let Some(Some(parent)) = patch.parent_id {
        check_parent(tx, board.id, id, parent)?;
    }
    if let Some(blockers) = &patch.blocked_by {
        check_blockers(tx, board.id, id, blockers)?;
    }
    let kind = patch.kind.unwrap_or(before.kind);
    let parent = patch.parent_id.unwrap_or(before.parent_id);
    if kind == ItemKind::Subtask && parent.is_none() {
        return Err(DomainError::validation("parent_id", "a subtask needs a parent item").into());
    }
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
        if old != new {
            changes.insert(field.to_owned(), json!({"before": old, "after": new}));
        }
    };
    let title = patch.title.clone().unwrap_or_else(|| before.title.clone());
    let body = patch.body.clone().unwrap_or_else(|| before.body.clone());
    let priority = patch.priority.unwrap_or(before.priority);
    let labels = patch
        .labels
        .clone()
        .unwrap_or_else(|| before.labels.clone());
    let agent_ready = patch.agent_ready.unwrap_or(before.agent_ready);
    let mut blockers = patch
        .blocked_by
        .clone()
        .unwrap_or_else(|| before.blocked_by.clone());
    blockers.sort_unstable();
    note("title", json!(before.title), json!(title));
    note("kind", json!(before.kind), json!(kind));
    note("parent_id", json!(before.parent_id), json!(parent));
    note("priority", json!(before.priority), json!(priority));
    note("labels", json!(before.labels), json!(labels));
    note("agent_ready", json!(before.agent_ready), json!(agent_ready));
    note("blocked_by", json!(before.blocked_by), json!(blockers));
    // Bodies can be large: the history says that it changed, not what to.
    if before.body != body {
        changes.insert("body".into(), json!({"changed": true}));
    }
    if is_holder {
        super::tx::renew_lease(tx, &board, caller, id, now_ms)?;
    }
    if changes.is_empty() {
        return super::tx::reload(tx, id, now_ms);
    }
    tx.prepare_cached(
        "UPDATE items SET title = ?, body = ?, kind = ?, parent_id = ?, priority = ?, labels = ?, agent_ready = ?, \
         version = version + 1, updated_at = ? WHERE id = ?",
    )?
    .execute(rusqlite::params![
        title,
        body,
        kind.as_str(),
        parent,
        priority,
        serde_json::to_string(&labels).unwrap_or_else(|_| "[]".into()),
        agent_ready,
        now_ms,
        id
    ])?;
    if patch.blocked_by.is_some() {
        replace_blockers(tx, id, &blockers)?;
    }
    super::tx::append_event(
        tx,
        &NewEvent {
            kind: EventType::ItemUpdated,
            board_id: board.id,
            item_id: Some(id),
            actor_id: Some(caller.worker_id),
            at_ms: now_ms,
            data: json!({"changes": changes, "version": before.version + 1}),
        },
    )?;
    let was_claimable = queue::claimable_by_agents(
        &board.rules(),
        before.status,
        before.agent_ready,
        before.open_blockers,
        before.claim.is_some(),
    );
    if !was_claimable {
        super::tx::announce_if_agent_ready(tx, &board, id, Some(caller.worker_id), now_ms)?;
    }
    super::tx::reload(tx, id, now_ms)
}

/// Filters of `GET /api/boards/{id}/items`.
#[derive(Debug, Default, Clone)]
pub struct ItemFilter {
    pub status: Option<LaneRole>,
    pub kind: Option<ItemKind>,
    pub label: Option<String>,
    pub claimed_by: Option<i64>,
    pub q: Option<String>,
    /// Items with an id greater than this (the cursor).
    pub after_id: i64,
    pub limit: i64,
}

pub async fn list(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
    filter: &ItemFilter,
    now_ms: i64,
) -> CommandResult<Vec<Item>> {
    let mut conn = pool.acquire().await?;
    if !caller.can_see_board(board_id) || load_board(&mut conn, board_id).await?.is_none() {
        return Err(not_found("board"));
    }
    let mut sql = format!("{SELECT_ITEM} WHERE i.board_id = ? AND i.id > ?");
    if filter.status.is_some() {
        sql.push_str(" AND i.status = ?");
    }
    if filter.kind.is_some() {
        sql.push_str(" AND i.kind = ?");
    }
    if filter.label.is_some() {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(i.labels) WHERE value = ?)");
    }
    if filter.claimed_by.is_some() {
        sql.push_str(" AND i.claim_worker_id = ? AND i.lease_expires_at > ?");
    }
    if filter.q.is_some() {
        sql.push_str(" AND (i.title LIKE ? ESCAPE '\\' OR i.body LIKE ? ESCAPE '\\')");
    }
    sql.push_str(" ORDER BY i.id LIMIT ?");
    let mut query = sqlx::query_as::<_, ItemRow>(&sql)
        .bind(board_id)
        .bind(filter.after_id);
    if let Some(status) = filter.status {
        query = query.bind(status.as_str());
    }
    if let Some(kind) = filter.kind {
        query = query.bind(kind.as_str());
    }
    if let Some(label) = &filter.label {
        query = query.bind(label.clone());
    }
    if let Some(worker) = filter.claimed_by {
        query = query.bind(worker).bind(now_ms);
    }
    if let Some(q) = &filter.q {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        query = query.bind(pattern.clone()).bind(pattern);
    }
    let rows = query.bind(filter.limit).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_item(now_ms))
        .collect::<Result<_, _>>()?)
}

/// Resolves a worker name to its id (for `claimed_by=`).
pub async fn worker_id_by_name(pool: &SqlitePool, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM workers WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// Ids of an item's subtasks, oldest first, at most `limit`.
pub async fn subtask_ids(
    pool: &SqlitePool,
    parent_id: i64,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM items WHERE parent_id = ? ORDER BY id LIMIT ?")
        .bind(parent_id)
        .bind(limit)
        .fetch_all(pool)
        .await
}
