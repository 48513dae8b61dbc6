//! Queue health for one board, read straight from SQLite: what agents can
//! claim now, who holds how much of their claim limit, lease expiries,
//! WIP saturation, and how long items stay in each lane.
//!
//! Read-only queries on the reader pool; the dashboard's own, so they live
//! here rather than in `store`.

use serde::Serialize;
use sqlx::SqlitePool;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct WorkerClaims {
    pub name: String,
    pub kind: String,
    pub held: i64,
    pub limit: i64,
    pub at_limit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneHealth {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub count: i64,
    pub wip_limit: Option<i64>,
    /// count / limit in percent, when the lane has a limit.
    pub saturation: Option<i64>,
    /// Mean and median time items stayed in the lane, over finished stays.
    pub mean_stay: Option<String>,
    pub median_stay: Option<String>,
    pub stays: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub claimable: i64,
    pub claimable_by_agents: i64,
    pub live_claims: i64,
    pub expired_24h: i64,
    pub workers: Vec<WorkerClaims>,
    pub lanes: Vec<LaneHealth>,
}

/// `1 h 5 min`, `3 d 4 h`, `42 s`.
pub fn human_duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How many events the cycle-time figures look back over.
const CYCLE_WINDOW: i64 = 50_000;

pub async fn board_health(
    pool: &SqlitePool,
    board_id: i64,
    claim_limit: i64,
    agents_need_ready: bool,
    now_ms: i64,
) -> Result<Health, sqlx::Error> {
    let free = "(i.claim_worker_id IS NULL OR i.lease_expires_at <= ?) AND NOT EXISTS \
        (SELECT 1 FROM item_deps d JOIN items bi ON bi.id = d.blocked_by_id WHERE d.item_id = i.id AND bi.status <> 'done')";
    let claimable: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM items i WHERE i.board_id = ? AND i.open = 1 AND {free}"
    ))
    .bind(board_id)
    .bind(now_ms)
    .fetch_one(pool)
    .await?;
    let claimable_by_agents: i64 = if agents_need_ready {
        sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM items i WHERE i.board_id = ? AND i.open = 1 AND i.agent_ready = 1 AND {free}"
        ))
        .bind(board_id)
        .bind(now_ms)
        .fetch_one(pool)
        .await?
    } else {
        claimable
    };
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT w.name, w.kind, COUNT(*) FROM items i JOIN workers w ON w.id = i.claim_worker_id \
         WHERE i.board_id = ? AND i.lease_expires_at > ? GROUP BY w.id ORDER BY COUNT(*) DESC, w.name",
    )
    .bind(board_id)
    .bind(now_ms)
    .fetch_all(pool)
    .await?;
    let workers: Vec<WorkerClaims> = rows
        .into_iter()
        .map(|(name, kind, held)| WorkerClaims {
            name,
            kind,
            held,
            limit: claim_limit,
            at_limit: held >= claim_limit,
        })
        .collect();
    let live_claims = workers.iter().map(|w| w.held).sum();
    let expired_24h: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE board_id = ? AND type = 'item.claim-expired' AND at > ?",
    )
    .bind(board_id)
    .bind(now_ms - 86_400_000)
    .fetch_one(pool)
    .await?;
    let lanes: Vec<(i64, String, String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT l.id, l.name, l.role, l.wip_limit, (SELECT COUNT(*) FROM items i WHERE i.lane_id = l.id) \
         FROM lanes l WHERE l.board_id = ? ORDER BY l.position, l.id",
    )
    .bind(board_id)
    .fetch_all(pool)
    .await?;
    let stays = lane_stays(pool, board_id).await?;
    let lanes = lanes
        .into_iter()
        .map(|(id, name, role, wip_limit, count)| {
            let mut durations = stays.get(&id).cloned().unwrap_or_default();
            durations.sort_unstable();
            let n = durations.len();
            let mean = (n > 0).then(|| durations.iter().sum::<i64>() / n as i64);
            let median = (n > 0).then(|| durations[n / 2]);
            LaneHealth {
                id,
                name,
                role,
                count,
                wip_limit,
                saturation: wip_limit.filter(|l| *l > 0).map(|l| count * 100 / l),
                mean_stay: mean.map(human_duration),
                median_stay: median.map(human_duration),
                stays: n,
            }
        })
        .collect();
    Ok(Health {
        claimable,
        claimable_by_agents,
        live_claims,
        expired_24h,
        workers,
        lanes,
    })
}

/// Finished stays per lane (ms), from each item's created/moved events:
/// a stay starts when the item enters a lane and ends when it leaves.
async fn lane_stays(
    pool: &SqlitePool,
    board_id: i64,
) -> Result<HashMap<i64, Vec<i64>>, sqlx::Error> {
    let events: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT item_id, type, at, data FROM (SELECT id, item_id, type, at, data FROM events \
         WHERE board_id = ? AND item_id IS NOT NULL AND type IN ('item.created', 'item.moved', 'item.released', 'item.claim-expired') \
         ORDER BY id DESC LIMIT ?) ORDER BY id",
    )
    .bind(board_id)
    .bind(CYCLE_WINDOW)
    .fetch_all(pool)
    .await?;
    Ok(stays_from_events(events.into_iter().map(
        |(item, kind, at, data)| {
            (
                item,
                kind,
                at,
                serde_json::from_str(&data).unwrap_or_default(),
            )
        },
    )))
}

/// The pure part of [`lane_stays`], over `(item, type, at, data)` in order.
pub fn stays_from_events(
    events: impl Iterator<Item = (i64, String, i64, serde_json::Value)>,
) -> HashMap<i64, Vec<i64>> {
    let mut current: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut stays: HashMap<i64, Vec<i64>> = HashMap::new();
    for (item, kind, at, data) in events {
        let entered = match kind.as_str() {
            "item.created" => data["lane_id"].as_i64(),
            "item.moved" => data["to_lane_id"].as_i64(),
            // A release or expiry may send the item back to a ready lane.
            _ => data["lane_id"].as_i64(),
        };
        let Some(lane) = entered else { continue };
        if let Some((from, since)) = current.get(&item).copied() {
            if from == lane {
                continue;
            }
            stays.entry(from).or_default().push(at - since);
        }
        current.insert(item, (lane, at));
    }
    stays
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stays_run_from_entering_a_lane_to_leaving_it() {
        let events = vec![
            (1, "item.created".to_owned(), 0, json!({"lane_id": 10})),
            (1, "item.moved".to_owned(), 1_000, json!({"to_lane_id": 11})),
            (2, "item.created".to_owned(), 500, json!({"lane_id": 10})),
            (1, "item.moved".to_owned(), 4_000, json!({"to_lane_id": 12})),
            (2, "item.released".to_owned(), 600, json!({"lane_id": 10})),
        ];
        let stays = stays_from_events(events.into_iter());
        assert_eq!(stays[&10], vec![1_000]);
        assert_eq!(stays[&11], vec![3_000]);
        assert!(!stays.contains_key(&12));
    }

    #[test]
    fn durations_read_like_a_human_would_say_them() {
        assert_eq!(human_duration(42_000), "42 s");
        assert_eq!(human_duration(5 * 60_000), "5 min");
        assert_eq!(human_duration(3_900_000), "1 h 5 min");
        assert_eq!(human_duration(2 * 86_400_000 + 3_600_000), "2 d 1 h");
    }
}
