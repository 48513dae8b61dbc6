//! Reads for flow analytics (issue 14): a board's lanes and the part of
//! its history that moves work (created, moved, claimed, released,
//! expired, done), turned into `domain::flow` events and replayed there.
//! One read-only pass on the reader pool; nothing is cached or stored.

use super::error::CommandResult;
use crate::domain::board::LaneRole;
use crate::domain::flow::{self, Actor, Change, FlowEvent, FlowRange, FlowReport, LaneInfo};
use crate::domain::{Principal, WorkerKind};
use sqlx::SqlitePool;

/// One history row with the few `data` fields the replay needs, pulled
/// out by SQLite's `json_extract` (no JSON parsing per row in Rust).
#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    item_id: i64,
    kind: String,
    at: i64,
    actor_id: Option<i64>,
    actor_name: Option<String>,
    actor_kind: Option<String>,
    lane_id: Option<i64>,
    to_lane_id: Option<i64>,
    claim_ended: Option<bool>,
    holder_id: Option<i64>,
    holder_name: Option<String>,
    holder_kind: Option<String>,
    /// `blocked_by` of a creation, `changes.blocked_by.after` of an edit:
    /// a JSON array of item ids.
    blocked_by: Option<String>,
}

fn ids(json: Option<&str>) -> Vec<i64> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn to_flow_event(row: EventRow) -> Option<FlowEvent> {
    let actor = match (
        row.actor_id,
        row.actor_name,
        row.actor_kind.as_deref().and_then(WorkerKind::parse),
    ) {
        (Some(id), Some(name), Some(kind)) => Some(Actor { id, name, kind }),
        _ => None,
    };
    let change = match row.kind.as_str() {
        "item.created" => Change::Created {
            lane_id: row.lane_id?,
            blocked_by: ids(row.blocked_by.as_deref()),
        },
        "item.updated" => Change::Dependencies {
            blocked_by: ids(row.blocked_by.as_deref()),
        },
        "item.moved" => Change::Moved {
            to_lane_id: row.to_lane_id?,
            claim_ended: row.claim_ended.unwrap_or(false),
        },
        "item.claimed" => {
            let holder = match (
                row.holder_id,
                row.holder_name,
                row.holder_kind.as_deref().and_then(WorkerKind::parse),
            ) {
                (Some(id), Some(name), Some(kind)) => Some(Actor { id, name, kind }),
                _ => None,
            };
            Change::Claimed {
                holder: holder.or_else(|| actor.clone())?,
            }
        }
        "item.released" => Change::Released {
            lane_id: row.lane_id,
        },
        "item.claim-expired" => Change::LeaseExpired,
        "item.done" => Change::Done,
        _ => return None,
    };
    Some(FlowEvent {
        item_id: row.item_id,
        at_ms: row.at,
        actor,
        change,
    })
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
    // The whole history up to the end of the range: the state on the
    // first day depends on everything before it.
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT e.item_id, e.type AS kind, e.at, e.actor_id, w.name AS actor_name, w.kind AS actor_kind, \
         json_extract(e.data, '$.lane_id') AS lane_id, json_extract(e.data, '$.to_lane_id') AS to_lane_id, \
         json_extract(e.data, '$.claim_ended') AS claim_ended, json_extract(e.data, '$.holder.id') AS holder_id, \
         json_extract(e.data, '$.holder.name') AS holder_name, json_extract(e.data, '$.holder.kind') AS holder_kind, \
         CASE e.type WHEN 'item.created' THEN json_extract(e.data, '$.blocked_by') \
           WHEN 'item.updated' THEN json_extract(e.data, '$.changes.blocked_by.after') END AS blocked_by \
         FROM events e \
         LEFT JOIN workers w ON w.id = e.actor_id \
         WHERE e.board_id = ? AND e.item_id IS NOT NULL AND e.at < ? \
         AND e.type IN ('item.created', 'item.moved', 'item.claimed', 'item.released', 'item.claim-expired', 'item.done', 'item.updated') \
         AND (e.type <> 'item.updated' OR json_extract(e.data, '$.changes.blocked_by') IS NOT NULL) \
         ORDER BY e.id",
    )
    .bind(board_id)
    .bind(range.end_ms())
    .fetch_all(pool)
    .await?;
    let mut report = flow::analyze(range, &lanes, rows.into_iter().filter_map(to_flow_event));
    report.board_id = board_id;
    Ok(report)
}
