//! Reads for flow analytics (issue 14): a board's lanes and the part of
//! its history that moves work (created, moved, claimed, released,
//! expired, done, dependency edits), turned into `domain::flow` events and
//! replayed there as they are read.
//!
//! The history is read on the blocking pool through a read-only rusqlite
//! connection to the same file, not through the sqlx pool: at 10^5 events
//! sqlx's per-row hand-off between its worker thread and the async side
//! (a channel message, a copy of every value, a context switch) cost about
//! ten times the read itself (profiled with `perf record` under
//! `cargo bench -p tenant-server --bench dashboard`).
//!
//! The replay's answer is kept in a small in-memory cache keyed by
//! everything it depends on: the database file, the board, the range and
//! kind filter, the board's claim limit and lanes, and the id of the
//! board's latest event. Any new event on the board (events are
//! append-only) or any lane or limit change makes a new key, so a cached
//! answer is never stale; repeated views of an idle board cost three small
//! indexed reads.

use super::error::CommandResult;
use crate::domain::board::LaneRole;
use crate::domain::flow::{Actor, Analysis, Change, FlowEvent, FlowRange, FlowReport, LaneInfo};
use crate::domain::{Principal, WorkerKind};
use rusqlite::{Connection, OpenFlags};
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Answers kept; least recently used first out. A report is a few tens of
/// kilobytes (one row per day and lane), so this bounds the cache to a few
/// megabytes.
const CACHE_ENTRIES: usize = 32;

#[derive(Debug, Clone, PartialEq)]
struct CacheKey {
    database: std::path::PathBuf,
    board_id: i64,
    range: FlowRange,
    lanes: Vec<LaneInfo>,
    last_event_id: i64,
}

/// Cached answers, most recently used last.
type Entries = Vec<(CacheKey, Arc<FlowReport>)>;

static CACHE: LazyLock<Mutex<Entries>> =
    LazyLock::new(|| Mutex::new(Vec::with_capacity(CACHE_ENTRIES)));

fn cached(key: &CacheKey) -> Option<Arc<FlowReport>> {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let at = cache.iter().position(|(k, _)| k == key)?;
    let entry = cache.remove(at);
    let report = entry.1.clone();
    cache.push(entry);
    Some(report)
}

fn remember(key: CacheKey, report: Arc<FlowReport>) {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(k, _)| *k != key);
    if cache.len() >= CACHE_ENTRIES {
        cache.remove(0);
    }
    cache.push((key, report));
}

/// The history rows the replay needs. Each event type is reduced in SQL
/// to a small code and at most two `data` fields (SQLite's `json_extract`,
/// only on the types that carry them), so no row allocates a string except
/// the rare dependency edit.
const EVENTS_SQL: &str = "SELECT e.item_id, \
     CASE e.type WHEN 'item.created' THEN 0 WHEN 'item.moved' THEN 1 WHEN 'item.claimed' THEN 2 \
       WHEN 'item.released' THEN 3 WHEN 'item.claim-expired' THEN 4 WHEN 'item.done' THEN 5 ELSE 6 END AS code, \
     e.at, e.actor_id, \
     CASE e.type WHEN 'item.moved' THEN json_extract(e.data, '$.to_lane_id') \
       WHEN 'item.claimed' THEN json_extract(e.data, '$.holder.id') \
       WHEN 'item.created' THEN json_extract(e.data, '$.lane_id') \
       WHEN 'item.released' THEN json_extract(e.data, '$.lane_id') END AS target, \
     CASE e.type WHEN 'item.moved' THEN json_extract(e.data, '$.claim_ended') END AS claim_ended, \
     CASE e.type WHEN 'item.created' THEN json_extract(e.data, '$.blocked_by') \
       WHEN 'item.updated' THEN json_extract(e.data, '$.changes.blocked_by.after') END AS blocked_by \
     FROM events e \
     WHERE e.board_id = ? AND e.id <= ? AND e.item_id IS NOT NULL AND e.at < ? \
     AND e.type IN ('item.created', 'item.moved', 'item.claimed', 'item.released', 'item.claim-expired', 'item.done', 'item.updated') \
     AND (e.type <> 'item.updated' OR json_extract(e.data, '$.changes.blocked_by') IS NOT NULL) \
     ORDER BY e.id";

/// A JSON array of item ids (`blocked_by`); anything else is no ids.
fn ids(json: Option<&str>) -> Vec<i64> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn to_flow_event(
    row: &rusqlite::Row<'_>,
    workers: &HashMap<i64, Actor>,
) -> rusqlite::Result<Option<FlowEvent>> {
    let item_id: i64 = row.get(0)?;
    let code: i64 = row.get(1)?;
    let at_ms: i64 = row.get(2)?;
    let actor_id: Option<i64> = row.get(3)?;
    let target: Option<i64> = row.get(4)?;
    let actor = actor_id.and_then(|id| workers.get(&id).cloned());
    let change = match code {
        0 => {
            let Some(lane_id) = target else {
                return Ok(None);
            };
            Change::Created {
                lane_id,
                blocked_by: ids(row.get_ref(6)?.as_str_or_null()?),
            }
        }
        1 => {
            let Some(to_lane_id) = target else {
                return Ok(None);
            };
            Change::Moved {
                to_lane_id,
                claim_ended: row.get::<_, Option<bool>>(5)?.unwrap_or(false),
            }
        }
        2 => {
            // The holder the event names, else whoever claimed.
            let holder = target.and_then(|id| workers.get(&id).cloned());
            let Some(holder) = holder.or_else(|| actor.clone()) else {
                return Ok(None);
            };
            Change::Claimed { holder }
        }
        3 => Change::Released { lane_id: target },
        4 => Change::LeaseExpired,
        5 => Change::Done,
        _ => Change::Dependencies {
            blocked_by: ids(row.get_ref(6)?.as_str_or_null()?),
        },
    };
    Ok(Some(FlowEvent {
        item_id,
        at_ms,
        actor,
        change,
    }))
}

/// The flow of one board the caller can see over `range` (whose
/// `claim_limit` is taken from the board).
pub async fn board_flow(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
    range: FlowRange,
) -> CommandResult<FlowReport> {
    let board = super::boards::get(pool, caller, board_id).await?;
    let range = FlowRange {
        claim_limit: board.claim_limit,
        ..range
    };
    let lanes: Vec<(i64, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, name, role, wip_limit FROM lanes WHERE board_id = ? ORDER BY position, id",
    )
    .bind(board_id)
    .fetch_all(pool)
    .await?;
    let lanes: Vec<LaneInfo> = lanes
        .into_iter()
        .filter_map(|(id, name, role, wip_limit)| {
            Some(LaneInfo {
                id,
                name,
                role: LaneRole::parse(&role)?,
                wip_limit,
            })
        })
        .collect();
    let last_event_id: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events WHERE board_id = ?")
            .bind(board_id)
            .fetch_one(pool)
            .await?;
    let key = CacheKey {
        database: pool.connect_options().get_filename().to_path_buf(),
        board_id,
        range,
        lanes,
        last_event_id,
    };
    if let Some(report) = cached(&key) {
        return Ok(FlowReport::clone(&report));
    }
    // Workers by id, once: events name them by id only.
    let workers: HashMap<i64, Actor> =
        sqlx::query_as::<_, (i64, String, String)>("SELECT id, name, kind FROM workers")
            .fetch_all(pool)
            .await?
            .into_iter()
            .filter_map(|(id, name, kind)| {
                Some((
                    id,
                    Actor {
                        id,
                        name: name.into(),
                        kind: WorkerKind::parse(&kind)?,
                    },
                ))
            })
            .collect();
    let lanes = key.lanes.clone();
    let database = key.database.clone();
    let mut report = tokio::task::spawn_blocking(move || {
        replay_history(&database, board_id, last_event_id, range, &lanes, &workers)
    })
    .await
    .map_err(|_| sqlx::Error::WorkerCrashed)??;
    report.board_id = board_id;
    remember(key, Arc::new(report.clone()));
    Ok(report)
}

/// Replays the board's whole history up to the end of the range (the
/// state on the first day depends on everything before it), row by row
/// as SQLite steps. Only events up to `last_event_id` count, so the answer
/// is exactly what the cache key describes even if more arrive meanwhile.
fn replay_history(
    database: &Path,
    board_id: i64,
    last_event_id: i64,
    range: FlowRange,
    lanes: &[LaneInfo],
    workers: &HashMap<i64, Actor>,
) -> rusqlite::Result<FlowReport> {
    let conn = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mut statement = conn.prepare(EVENTS_SQL)?;
    let mut rows = statement.query(rusqlite::params![board_id, last_event_id, range.end_ms()])?;
    let mut analysis = Analysis::new(range, lanes);
    while let Some(row) = rows.next()? {
        if let Some(event) = to_flow_event(row, workers)? {
            analysis.push(&event);
        }
    }
    Ok(analysis.finish())
}
