//! Reads for flow analytics (issue 14): a board's lanes and the part of
//! its history that moves work (created, moved, claimed, released,
//! expired, done), turned into `domain::flow` events and replayed there.
//! One read-only pass on the reader pool; nothing is cached or stored.

use super::error::CommandResult;
use crate::domain::board::LaneRole;
use crate::domain::flow::{self, Actor, Change, FlowEvent, FlowRange, FlowReport, LaneInfo};
use crate::domain::{Principal, WorkerKind};
use serde::Deserialize;
use sqlx::SqlitePool;

/// The fields of an event's `data` the replay needs; the rest is ignored.
#[derive(Debug, Default, Deserialize)]
struct EventData {
    lane_id: Option<i64>,
    to_lane_id: Option<i64>,
    claim_ended: Option<bool>,
    holder: Option<HolderData>,
}

#[derive(Debug, Deserialize)]
struct HolderData {
    id: i64,
    name: String,
    kind: WorkerKind,
}

type EventRow = (
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
);

fn to_flow_event(row: EventRow) -> Option<FlowEvent> {
    let (item_id, kind, at_ms, actor_id, actor_name, actor_kind, data) = row;
    let data: EventData = serde_json::from_str(&data).unwrap_or_default();
    let actor = match (
        actor_id,
        actor_name,
        actor_kind.as_deref().and_then(WorkerKind::parse),
    ) {
        (Some(id), Some(name), Some(kind)) => Some(Actor { id, name, kind }),
        _ => None,
    };
    let change = match kind.as_str() {
        "item.created" => Change::Created {
            lane_id: data.lane_id?,
        },
        "item.moved" => Change::Moved {
            to_lane_id: data.to_lane_id?,
            claim_ended: data.claim_ended.unwrap_or(false),
        },
        "item.claimed" => {
            let holder = data.holder.map(|h| Actor {
                id: h.id,
                name: h.name,
                kind: h.kind,
            });
            Change::Claimed {
                holder: holder.or_else(|| actor.clone())?,
            }
        }
        "item.released" => Change::Released {
            lane_id: data.lane_id,
        },
        "item.claim-expired" => Change::LeaseExpired,
        "item.done" => Change::Done,
        _ => return None,
    };
    Some(FlowEvent {
        item_id,
        at_ms,
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
        "SELECT e.item_id, e.type, e.at, e.actor_id, w.name, w.kind, e.data FROM events e \
         LEFT JOIN workers w ON w.id = e.actor_id \
         WHERE e.board_id = ? AND e.item_id IS NOT NULL AND e.at < ? \
         AND e.type IN ('item.created', 'item.moved', 'item.claimed', 'item.released', 'item.claim-expired', 'item.done') \
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
