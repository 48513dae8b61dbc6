//! The flow page (`/boards/{id}/flow`, issue 14): the figures of
//! `GET /api/boards/{id}/stats` as headline answers and SVG charts, with
//! date-range and worker-kind filters (a plain GET form, no script).

use super::charts::{self, BarRow, Series};
use super::pages::{AssetUrls, MeView, SignedIn};
use super::{WebError, page};
use crate::AppState;
use crate::domain::WorkerKind;
use crate::domain::board::LaneRole;
use crate::domain::flow::{self, FlowReport, Percentiles};
use crate::store::{self, boards, stats};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests {
    use super::short_duration;

    #[test]
    fn short_durations_keep_one_number_and_a_unit() {
        assert_eq!(short_duration(42), "42 s");
        assert_eq!(short_duration(20 * 60), "20 min");
        assert_eq!(short_duration(5400), "1.5 h");
        assert_eq!(short_duration(20 * 3600), "20 h");
        assert_eq!(short_duration(36 * 3600), "36 h");
        assert_eq!(short_duration(84 * 3600), "3.5 d");
        assert_eq!(short_duration(12 * 86_400), "12 d");
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct FlowQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub kind: Option<String>,
}

/// One answer at the top of the page.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    pub label: String,
    pub value: String,
    pub note: String,
    pub warn: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub id: String,
    pub title: String,
    pub help: String,
    /// SVG built by [`charts`], which escapes every text it draws.
    pub svg: String,
}

/// `45 s`, `20 min`, `1.5 h`, `20 h`, `3.5 d`: one number a chart note can hold.
pub fn short_duration(seconds: i64) -> String {
    let one = |v: f64, unit: &str| {
        if v < 10.0 && (v * 10.0).round() % 10.0 != 0.0 {
            format!("{v:.1} {unit}")
        } else {
            format!("{} {unit}", v.round() as i64)
        }
    };
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 90 * 60 => format!("{} min", s / 60),
        s if s < 48 * 3600 => one(s as f64 / 3600.0, "h"),
        s => one(s as f64 / 86_400.0, "d"),
    }
}

fn seconds(value: Option<i64>) -> String {
    value.map_or_else(|| "–".into(), short_duration)
}

fn spread(p: &Percentiles) -> String {
    if p.count == 0 {
        return "no data".into();
    }
    format!(
        "{} · {} · {}  (n={})",
        seconds(p.p50_seconds),
        seconds(p.p85_seconds),
        seconds(p.p95_seconds),
        p.count
    )
}

fn bar_values(p: &Percentiles) -> Vec<i64> {
    [p.p50_seconds, p.p85_seconds, p.p95_seconds]
        .into_iter()
        .map(|v| v.unwrap_or(0))
        .collect()
}

/// The answers a lead looks for: how fast, where it waits, who is
/// overloaded, whether agents lose leases.
pub fn headlines(report: &FlowReport) -> Vec<Headline> {
    let days = report.days.len().max(1) as f64;
    let by_agents: i64 = report.days.iter().map(|d| d.done_agent).sum();
    let mut out = vec![
        Headline {
            label: "Finished".into(),
            value: report.done_total.to_string(),
            note: format!(
                "{:.1} a day · {} by agents, {} by humans",
                report.done_total as f64 / days,
                by_agents,
                report.done_total - by_agents
            ),
            warn: false,
        },
        Headline {
            label: "Cycle time (p85)".into(),
            value: seconds(report.cycle_time.all.p85_seconds),
            note: format!(
                "start to done; p50 {} · agents {} · humans {}",
                seconds(report.cycle_time.all.p50_seconds),
                seconds(report.cycle_time.agent.p85_seconds),
                seconds(report.cycle_time.human.p85_seconds)
            ),
            warn: false,
        },
        Headline {
            label: "Lead time (p85)".into(),
            value: seconds(report.lead_time.all.p85_seconds),
            note: format!(
                "created to done; p50 {}",
                seconds(report.lead_time.all.p50_seconds)
            ),
            warn: false,
        },
    ];
    let waiting = report
        .lanes
        .iter()
        .filter(|l| l.role != LaneRole::Done && l.stay.count > 0)
        .max_by_key(|l| l.stay.p85_seconds.unwrap_or(0));
    out.push(match waiting {
        Some(lane) => Headline {
            label: "Waits longest in".into(),
            value: lane.name.clone(),
            note: format!(
                "p85 stay {} · {} there now",
                seconds(lane.stay.p85_seconds),
                lane.now
            ),
            warn: false,
        },
        None => Headline {
            label: "Waits longest in".into(),
            value: "–".into(),
            note: "no finished lane stays in this range".into(),
            warn: false,
        },
    });
    let overloaded: Vec<String> = report
        .workers
        .iter()
        .filter(|w| w.days_at_limit > 0)
        .take(3)
        .map(|w| format!("{} ({} d)", w.name, w.days_at_limit))
        .collect();
    out.push(Headline {
        label: "At the claim limit".into(),
        value: if overloaded.is_empty() {
            "nobody".into()
        } else {
            overloaded.join(", ")
        },
        note: format!(
            "limit {} claims per worker; days on which a worker held that many",
            report.claim_limit
        ),
        warn: !overloaded.is_empty(),
    });
    let agent_claims: i64 = report
        .workers
        .iter()
        .filter(|w| w.kind == WorkerKind::Agent)
        .map(|w| w.claims)
        .sum();
    let agent_expired: i64 = report.days.iter().map(|d| d.expired_agent).sum();
    out.push(Headline {
        label: "Leases lost".into(),
        value: report.expired_total.to_string(),
        note: if agent_claims > 0 {
            format!(
                "{agent_expired} by agents: {:.0}% of their {agent_claims} claims",
                agent_expired as f64 * 100.0 / agent_claims as f64
            )
        } else {
            format!("{agent_expired} by agents")
        },
        warn: report.expired_total > 0,
    });
    out.push(Headline {
        label: "Time blocked".into(),
        value: short_duration(report.blocked.total_seconds),
        note: format!(
            "{} in blocked lanes, {} waiting for open dependencies; now {} in Blocked, {} waiting",
            short_duration(report.blocked.lane_seconds),
            short_duration(report.blocked.dependency_seconds),
            report.blocked.blocked_at_end,
            report.blocked.waiting_at_end
        ),
        warn: report.blocked.blocked_at_end + report.blocked.waiting_at_end > 0,
    });
    out
}

/// Every chart of the page, in reading order.
pub fn charts(report: &FlowReport) -> Vec<Chart> {
    let labels: Vec<String> = report.days.iter().map(|d| d.date.clone()).collect();
    let col = |f: fn(&flow::DayFlow) -> i64| report.days.iter().map(f).collect::<Vec<i64>>();
    let mut out = Vec::new();
    out.push(Chart {
        id: "throughput".into(),
        title: "Throughput: items finished per day".into(),
        help: "Stacked by who finished the item.".into(),
        svg: charts::stacked_bars(
            "throughput",
            "Items finished per day",
            &format!(
                "{} items finished in {} days",
                report.done_total,
                labels.len()
            ),
            &labels,
            &[
                Series::new("humans", "s-human", col(|d| d.done_human)),
                Series::new("agents", "s-agent", col(|d| d.done_agent)),
            ],
        ),
    });
    let time_rows = [
        ("Cycle · everyone", &report.cycle_time.all),
        ("Cycle · humans", &report.cycle_time.human),
        ("Cycle · agents", &report.cycle_time.agent),
        ("Lead · everyone", &report.lead_time.all),
        ("Lead · humans", &report.lead_time.human),
        ("Lead · agents", &report.lead_time.agent),
    ]
    .into_iter()
    .map(|(label, p)| BarRow {
        label: label.into(),
        values: bar_values(p),
        note: spread(p),
        hot: false,
    })
    .collect::<Vec<_>>();
    out.push(Chart {
        id: "times".into(),
        title: "Cycle and lead time".into(),
        help: "Bars and numbers: p50 · p85 · p95. Half of the items took at most the dark bar, 85 % the mid one, 95 % the light one.".into(),
        svg: charts::hbars(
            "times",
            "Cycle and lead time percentiles",
            "p50, p85 and p95 of cycle time (start to done) and lead time (created to done), for everyone, humans and agents",
            &time_rows,
            &["s-p50", "s-p85", "s-p95"],
        ),
    });
    let worst = report
        .lanes
        .iter()
        .filter(|l| l.role != LaneRole::Done)
        .filter_map(|l| l.stay.p85_seconds)
        .max();
    let lane_rows: Vec<BarRow> = report
        .lanes
        .iter()
        .filter(|l| l.role != LaneRole::Done)
        .map(|l| {
            let full_days = l
                .wip_limit
                .map(|limit| l.peak.iter().filter(|p| **p >= limit).count());
            let mut note = format!(
                "{} · {} · {} · {} now",
                seconds(l.stay.p50_seconds),
                seconds(l.stay.p85_seconds),
                seconds(l.stay.p95_seconds),
                l.now
            );
            if let Some(days) = full_days.filter(|d| *d > 0) {
                note.push_str(&format!(" · full {days} d"));
            }
            BarRow {
                label: l.name.clone(),
                values: bar_values(&l.stay),
                note,
                hot: l.stay.p85_seconds.is_some() && l.stay.p85_seconds == worst,
            }
        })
        .collect();
    out.push(Chart {
        id: "lanes".into(),
        title: "Where work waits: time in each lane".into(),
        help: "How long items stayed in a lane before moving on (p50 · p85 · p95) and how many are there now; the longest wait is marked.".into(),
        svg: charts::hbars(
            "lanes",
            "Time spent in each lane",
            "p50, p85 and p95 of lane stays per lane",
            &lane_rows,
            &["s-p50", "s-p85", "s-p95"],
        ),
    });
    let cfd: Vec<Series> = report
        .lanes
        .iter()
        .rev()
        .map(|l| Series {
            name: l.name.clone(),
            class: format!("r-{}", l.role.as_str()),
            values: l.end_of_day.clone(),
        })
        .collect();
    out.push(Chart {
        id: "cfd".into(),
        title: "Cumulative flow".into(),
        help: "Items per lane at the end of each day. A band that widens is where work piles up."
            .into(),
        svg: charts::stacked_area(
            "cfd",
            "Cumulative flow diagram",
            "items per lane at the end of each day",
            &labels,
            &cfd,
        ),
    });
    let wip_lanes: Vec<_> = report
        .lanes
        .iter()
        .filter(|l| matches!(l.role, LaneRole::InProgress | LaneRole::Review))
        .collect();
    let wip_limit = wip_lanes
        .iter()
        .map(|l| l.wip_limit)
        .sum::<Option<i64>>()
        .filter(|_| !wip_lanes.is_empty());
    out.push(Chart {
        id: "wip".into(),
        title: "Work in progress".into(),
        help: "Items in progress or in review: at the end of each day, and the most at once."
            .into(),
        svg: charts::lines(
            "wip",
            "Work in progress per day",
            "items in in-progress and review lanes per day",
            &labels,
            &[
                Series::new("most at once", "s-peak", col(|d| d.wip_peak)),
                Series::new("end of day", "s-wip", col(|d| d.wip)),
            ],
            wip_limit.map(|l| (l, "WIP limits")),
        ),
    });
    out.push(Chart {
        id: "claims".into(),
        title: "Claim-limit saturation".into(),
        help: "The most claims one worker held at once each day, against the claim limit, and how many workers reached it.".into(),
        svg: charts::lines(
            "claims",
            "Claims per worker against the limit",
            "per day: the most claims one worker held, and workers at the limit",
            &labels,
            &[
                Series::new("most held by one worker", "s-peak", col(|d| d.claims_peak_per_worker)),
                Series::new("workers at the limit", "s-hot", col(|d| d.workers_at_limit)),
            ],
            Some((report.claim_limit, "claim limit")),
        ),
    });
    out.push(Chart {
        id: "leases".into(),
        title: "Lost leases and releases".into(),
        help: "A lease that ran out is work lost; a release is a claim given back.".into(),
        svg: charts::stacked_bars(
            "leases",
            "Lease expiries and releases per day",
            &format!("{} leases expired in the range", report.expired_total),
            &labels,
            &[
                Series::new(
                    "agent lease expired",
                    "s-expired-agent",
                    col(|d| d.expired_agent),
                ),
                Series::new(
                    "human lease expired",
                    "s-expired-human",
                    col(|d| d.expired_human),
                ),
                Series::new("released", "s-released", col(|d| d.released)),
            ],
        ),
    });
    let limit = report.claim_limit;
    let worker_rows: Vec<BarRow> = report
        .workers
        .iter()
        .take(15)
        .map(|w| {
            let mut note = format!("peak {}/{limit}", w.peak_held);
            if w.days_at_limit > 0 {
                note.push_str(&format!(" · at limit {} d", w.days_at_limit));
            }
            if w.leases_expired > 0 {
                note.push_str(&format!(" · {} lost", w.leases_expired));
            }
            note.push_str(&format!(" · {} done", w.done));
            BarRow {
                label: format!("{} ({})", w.name, w.kind.as_str()),
                values: vec![w.peak_held, w.held_at_end],
                note,
                hot: w.days_at_limit > 0,
            }
        })
        .collect();
    out.push(Chart {
        id: "workers".into(),
        title: "Who is loaded".into(),
        help: "Per worker: the most claims held at once (light) and held now (dark); marked when they reached the claim limit.".into(),
        svg: charts::hbars(
            "workers",
            "Claims per worker",
            "most claims held at once and held at the end, per worker",
            &worker_rows,
            &["s-p85", "s-p50"],
        ),
    });
    out
}

pub async fn flow_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
    Query(query): Query<FlowQuery>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let board = boards::get(&state.store.reader, &principal, id).await?;
    let mut context = tera::Context::new();
    context.insert("me", &MeView::of(&session));
    context.insert("assets", &AssetUrls::get());
    context.insert("title", &format!("{} flow", board.name));
    context.insert("board", &board);
    context.insert("kind", query.kind.as_deref().unwrap_or("all"));
    let mut invalid = false;
    match flow::parse_range(
        query.from.as_deref(),
        query.to.as_deref(),
        query.kind.as_deref(),
        store::now_ms(),
    ) {
        Ok(range) => {
            let report = stats::board_flow(&state.store.reader, &principal, id, range).await?;
            context.insert("headlines", &headlines(&report));
            context.insert("charts", &charts(&report));
            context.insert("from", &report.from);
            context.insert("to", &report.to);
            context.insert("report", &report);
        }
        Err(errors) => {
            invalid = true;
            let message: Vec<String> = errors.iter().map(|(f, m)| format!("{f} {m}")).collect();
            context.insert("error", &message.join("; "));
            context.insert("from", query.from.as_deref().unwrap_or(""));
            context.insert("to", query.to.as_deref().unwrap_or(""));
        }
    }
    let mut response = page("flow.html", &context)?;
    if invalid {
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}
