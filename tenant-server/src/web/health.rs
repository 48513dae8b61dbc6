//! Queue health for one board as the dashboard shows it: what agents can
//! claim now, who holds how much of their claim limit, lease expiries,
//! WIP saturation, and how long items stay in each lane.
//!
//! The rows come from `store::health` (reader pool); this turns them into
//! the page's figures (saturation, stay durations in words).

use crate::store::health;
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
    let claimable = health::claimable_count(pool, board_id, false, now_ms).await?;
    let claimable_by_agents = if agents_need_ready {
        health::claimable_count(pool, board_id, true, now_ms).await?
    } else {
        claimable
    };
    let workers: Vec<WorkerClaims> = health::claims_by_worker(pool, board_id, now_ms)
        .await?
        .into_iter()
        .map(|w| WorkerClaims {
            name: w.name,
            kind: w.kind,
            held: w.held,
            limit: claim_limit,
            at_limit: w.held >= claim_limit,
        })
        .collect();
    let live_claims = workers.iter().map(|w| w.held).sum();
    let expired_24h = health::expired_since(pool, board_id, now_ms - 86_400_000).await?;
    let lanes = health::lane_counts(pool, board_id).await?;
    let entries = health::lane_entries(pool, board_id, CYCLE_WINDOW).await?;
    let stays = stays_from_events(entries.into_iter().map(|e| {
        (
            e.item_id,
            e.kind,
            e.at,
            serde_json::from_str(&e.data).unwrap_or_default(),
        )
    }));
    let lanes = lanes
        .into_iter()
        .map(|lane| {
            let mut durations = stays.get(&lane.id).cloned().unwrap_or_default();
            durations.sort_unstable();
            let n = durations.len();
            let mean = (n > 0).then(|| durations.iter().sum::<i64>() / n as i64);
            let median = (n > 0).then(|| durations[n / 2]);
            LaneHealth {
                id: lane.id,
                name: lane.name,
                role: lane.role,
                count: lane.count,
                wip_limit: lane.wip_limit,
                saturation: lane
                    .wip_limit
                    .filter(|l| *l > 0)
                    .map(|l| lane.count * 100 / l),
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

/// Finished stays per lane (ms), from each item's lane-entering events
/// `(item, type, at, data)` in order: a stay starts when the item enters a
/// lane and ends when it leaves.
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
