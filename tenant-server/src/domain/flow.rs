//! Flow analytics (issue 14): how work moved across a board, computed by
//! replaying its history. Pure: `store::stats` loads the events and lanes,
//! this module decides what they mean, and the API and dashboard present
//! the result.
//!
//! Definitions (also in docs/dashboard.md):
//! - a day is a UTC calendar day; the range is `from..=to`, whole days;
//! - *throughput*: `item.done` events per day, split by the kind of the
//!   worker who finished the item (its actor, else its holder);
//! - *lead time*: creation to done; *cycle time*: first start (the first
//!   claim or first entry into an in-progress, review or blocked lane,
//!   whichever comes first) to done; counted for items done in the range;
//! - *lane stay*: entering a lane to leaving it, for stays that ended in
//!   the range;
//! - *blocked time*: the time, within the range, that an item spent in a
//!   blocked lane or, while not done, waiting for a dependency (an item in
//!   its `blocked_by`) that was not done; both at once count once. Periods
//!   still running at the end of the range count up to it. Dependencies
//!   come from the history: `blocked_by` of `item.created` and
//!   `changes.blocked_by.after` of `item.updated`; an item is done while it
//!   is in a done lane;
//! - *WIP*: items in in-progress and review lanes; the cumulative flow
//!   counts items per lane at the end of each day;
//! - *claim saturation*: the most claims one worker held at once that day
//!   against the board's current claim limit;
//! - percentiles are nearest-rank (`p85` of 20 values is the 17th).
//!
//! The worker-kind filter keeps only what humans (or agents) did: items
//! they finished, claims they held, leases they lost. Lanes, cumulative
//! flow and WIP describe the items and always cover the whole board.

use super::WorkerKind;
use super::board::LaneRole;
use super::validate::FieldErrors;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

pub const DAY_MS: i64 = 86_400_000;

/// The longest range one request may cover, in days.
pub const MAX_DAYS: i64 = 366;

/// A worker as the history names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    /// Shared: every event of a worker names the same string.
    pub name: Arc<str>,
    pub kind: WorkerKind,
}

/// What one history event did to the flow.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `blocked_by`: the dependencies it was created with.
    Created {
        lane_id: i64,
        blocked_by: Vec<i64>,
    },
    /// Its dependencies were replaced by `blocked_by`.
    Dependencies {
        blocked_by: Vec<i64>,
    },
    Moved {
        to_lane_id: i64,
        claim_ended: bool,
    },
    Claimed {
        holder: Actor,
    },
    /// `lane_id`: where the release put the item, when the event says.
    Released {
        lane_id: Option<i64>,
    },
    LeaseExpired,
    Done,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowEvent {
    pub item_id: i64,
    pub at_ms: i64,
    pub actor: Option<Actor>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneInfo {
    pub id: i64,
    pub name: String,
    pub role: LaneRole,
    pub wip_limit: Option<i64>,
}

/// What to compute: whole UTC days from `from_ms`, `days` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRange {
    pub from_ms: i64,
    pub days: i64,
    pub kind: Option<WorkerKind>,
    pub claim_limit: i64,
}

impl FlowRange {
    pub fn end_ms(&self) -> i64 {
        self.from_ms + self.days * DAY_MS
    }

    fn contains(&self, at_ms: i64) -> bool {
        at_ms >= self.from_ms && at_ms < self.end_ms()
    }

    fn keeps(&self, kind: Option<WorkerKind>) -> bool {
        self.kind.is_none() || self.kind == kind
    }
}

/// Nearest-rank percentiles of a set of durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Percentiles {
    pub count: usize,
    pub p50_seconds: Option<i64>,
    pub p85_seconds: Option<i64>,
    pub p95_seconds: Option<i64>,
    pub max_seconds: Option<i64>,
}

impl Percentiles {
    pub fn of(mut durations_ms: Vec<i64>) -> Self {
        durations_ms.sort_unstable();
        let n = durations_ms.len();
        let rank = |p: usize| -> Option<i64> {
            if n == 0 {
                return None;
            }
            let index = (p * n).div_ceil(100).clamp(1, n) - 1;
            Some(durations_ms[index] / 1000)
        };
        Self {
            count: n,
            p50_seconds: rank(50),
            p85_seconds: rank(85),
            p95_seconds: rank(95),
            max_seconds: durations_ms.last().map(|ms| ms / 1000),
        }
    }
}

/// Cycle or lead time, for everyone and per worker kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct TimeByKind {
    pub all: Percentiles,
    pub human: Percentiles,
    pub agent: Percentiles,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct DayFlow {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Items finished that day, by the finisher's kind.
    pub done_human: i64,
    pub done_agent: i64,
    /// Items in in-progress and review lanes at the end of the day, and
    /// the most at any moment of it.
    pub wip: i64,
    pub wip_peak: i64,
    /// Live claims at the end of the day; the most one worker held at once;
    /// how many workers reached the claim limit.
    pub claims: i64,
    pub claims_peak_per_worker: i64,
    pub workers_at_limit: i64,
    /// Leases that ran out (work lost), by the holder's kind.
    pub expired_human: i64,
    pub expired_agent: i64,
    /// Claims given back by their holder, and ones an admin forced off.
    pub released: i64,
}

/// One lane over the range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LaneFlow {
    pub lane_id: i64,
    pub name: String,
    pub role: LaneRole,
    pub wip_limit: Option<i64>,
    /// How long items stayed (stays that ended in the range).
    pub stay: Percentiles,
    /// Items in the lane at the end of each day (the cumulative flow).
    pub end_of_day: Vec<i64>,
    /// The most items in the lane at any moment of each day.
    pub peak: Vec<i64>,
    /// Items in the lane at the end of the range.
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkerFlow {
    pub id: i64,
    pub name: String,
    pub kind: WorkerKind,
    /// Items this worker finished in the range.
    pub done: i64,
    /// Claims taken in the range.
    pub claims: i64,
    /// The most claims held at once in the range, and at its end.
    pub peak_held: i64,
    pub held_at_end: i64,
    /// Days on which this worker reached the claim limit.
    pub days_at_limit: i64,
    pub leases_expired: i64,
    pub released: i64,
}

/// Blocked time: an item is blocked while it is in a blocked lane, or
/// while it is not done and one of its dependencies (`blocked_by`, as the
/// history recorded it) is not done (in a done lane). Only time inside the
/// range counts; periods still running at its end count up to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct BlockedTime {
    /// Time items were blocked for either reason, summed over items; an
    /// item in a blocked lane that also waits for a dependency counts once.
    pub total_seconds: i64,
    /// Of which in blocked lanes.
    pub lane_seconds: i64,
    /// Time open items waited for dependencies that were not done.
    pub dependency_seconds: i64,
    /// Blocked-lane stays that ended in the range.
    pub stays: Percentiles,
    /// Dependency waits that ended in the range (the last unfinished
    /// dependency was done or removed, or the item itself was done).
    pub dependency_waits: Percentiles,
    /// Items in a blocked lane at the end of the range.
    pub blocked_at_end: i64,
    /// Items waiting for an unfinished dependency at the end of the range.
    pub waiting_at_end: i64,
}

/// Everything the stats endpoint and the flow page show.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlowReport {
    pub board_id: i64,
    /// First and last day of the range, `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    pub to: String,
    /// The worker-kind filter, if any.
    pub kind: Option<WorkerKind>,
    /// The board's claim limit per worker (today's setting).
    pub claim_limit: i64,
    /// History events replayed to compute this.
    pub events_read: usize,
    pub days: Vec<DayFlow>,
    pub cycle_time: TimeByKind,
    pub lead_time: TimeByKind,
    pub lanes: Vec<LaneFlow>,
    pub workers: Vec<WorkerFlow>,
    pub blocked: BlockedTime,
    pub done_total: i64,
    pub expired_total: i64,
}

#[derive(Default)]
struct ItemState {
    lane: Option<i64>,
    entered_ms: i64,
    created_ms: Option<i64>,
    started_ms: Option<i64>,
    holder: Option<i64>,
    /// In a done lane.
    done: bool,
    blockers: Vec<i64>,
    /// When the current blocked period (lane, dependency, either) began.
    lane_blocked_since: Option<i64>,
    waiting_since: Option<i64>,
    blocked_since: Option<i64>,
}

/// Time accumulated by blocked periods, clipped to the range.
#[derive(Default)]
struct BlockedClock {
    lane_ms: i64,
    dependency_ms: i64,
    total_ms: i64,
    /// Whole lengths of dependency waits that ended in the range.
    waits: Vec<i64>,
}

/// Starts or ends one blocked period at `at`; an ended period adds its part
/// after `from` to `acc` and returns its whole length.
fn track(since: &mut Option<i64>, on: bool, at: i64, from: i64, acc: &mut i64) -> Option<i64> {
    match (*since, on) {
        (None, true) => {
            *since = Some(at);
            None
        }
        (Some(start), false) => {
            *since = None;
            *acc += (at - start.max(from)).max(0);
            Some(at - start)
        }
        _ => None,
    }
}

#[derive(Default)]
struct WorkerState {
    name: Arc<str>,
    kind: Option<WorkerKind>,
    held: i64,
    done: i64,
    claims: i64,
    peak: i64,
    expired: i64,
    released: i64,
    limit_days: Vec<bool>,
}

struct Replay<'a> {
    range: FlowRange,
    lanes: &'a [LaneInfo],
    lane_index: HashMap<i64, usize>,
    items: HashMap<i64, ItemState>,
    counts: Vec<i64>,
    workers: HashMap<i64, WorkerState>,
    days: Vec<DayFlow>,
    lane_end: Vec<Vec<i64>>,
    lane_peak: Vec<Vec<i64>>,
    stays: Vec<Vec<i64>>,
    blocked: BlockedClock,
    /// Item → the items whose `blocked_by` names it.
    dependents: HashMap<i64, Vec<i64>>,
    cycle: [Vec<i64>; 3],
    lead: [Vec<i64>; 3],
    /// The first day not yet closed.
    open_day: i64,
    events_read: usize,
}

fn kind_slot(kind: Option<WorkerKind>) -> Option<usize> {
    match kind {
        Some(WorkerKind::Human) => Some(1),
        Some(WorkerKind::Agent) => Some(2),
        None => None,
    }
}

fn is_wip(role: LaneRole) -> bool {
    matches!(role, LaneRole::InProgress | LaneRole::Review)
}

fn starts_work(role: LaneRole) -> bool {
    matches!(
        role,
        LaneRole::InProgress | LaneRole::Review | LaneRole::Blocked
    )
}

/// `YYYY-MM-DD` of a UTC day starting at `ms`.
pub fn date_of(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

impl<'a> Replay<'a> {
    fn new(range: FlowRange, lanes: &'a [LaneInfo]) -> Self {
        let days = usize::try_from(range.days).unwrap_or(0);
        Self {
            range,
            lanes,
            lane_index: lanes.iter().enumerate().map(|(i, l)| (l.id, i)).collect(),
            items: HashMap::new(),
            counts: vec![0; lanes.len()],
            workers: HashMap::new(),
            days: (0..range.days)
                .map(|d| DayFlow {
                    date: date_of(range.from_ms + d * DAY_MS),
                    ..DayFlow::default()
                })
                .collect(),
            lane_end: vec![vec![0; days]; lanes.len()],
            lane_peak: vec![vec![0; days]; lanes.len()],
            stays: vec![Vec::new(); lanes.len()],
            blocked: BlockedClock::default(),
            dependents: HashMap::new(),
            cycle: Default::default(),
            lead: Default::default(),
            open_day: 0,
            events_read: 0,
        }
    }

    /// The day `at_ms` falls on, if in the range. Days already closed
    /// (an event older than one before it) count on the open day.
    fn day(&self, at_ms: i64) -> Option<usize> {
        if !self.range.contains(at_ms) {
            return None;
        }
        let day = ((at_ms - self.range.from_ms) / DAY_MS).max(self.open_day);
        usize::try_from(day).ok()
    }

    fn wip_now(&self) -> i64 {
        self.lanes
            .iter()
            .zip(&self.counts)
            .filter(|(l, _)| is_wip(l.role))
            .map(|(_, c)| *c)
            .sum()
    }

    fn claims_now(&self) -> i64 {
        self.workers
            .values()
            .filter(|w| self.range.keeps(w.kind))
            .map(|w| w.held)
            .sum()
    }

    /// Closes every day that ends at or before `at_ms`: its end-of-day
    /// figures are the state now, and the next day's peaks start from it.
    fn advance(&mut self, at_ms: i64) {
        while self.open_day < self.range.days
            && self.range.from_ms + (self.open_day + 1) * DAY_MS <= at_ms
        {
            let Ok(d) = usize::try_from(self.open_day) else {
                return;
            };
            self.close_day(d);
            self.open_day += 1;
            if let Ok(next) = usize::try_from(self.open_day)
                && next < self.days.len()
            {
                self.start_day(next);
            }
        }
    }

    fn start_day(&mut self, d: usize) {
        for (i, count) in self.counts.iter().enumerate() {
            self.lane_peak[i][d] = *count;
        }
        self.days[d].wip_peak = self.wip_now();
        let limit = self.range.claim_limit;
        let mut peak = 0;
        for w in self.workers.values_mut() {
            if w.held > 0 && (self.range.kind.is_none() || self.range.kind == w.kind) {
                peak = peak.max(w.held);
                if w.held >= limit && limit > 0 {
                    mark_limit_day(w, d, self.days.len());
                }
            }
        }
        self.days[d].claims_peak_per_worker = peak;
    }

    fn close_day(&mut self, d: usize) {
        for (i, count) in self.counts.iter().enumerate() {
            self.lane_end[i][d] = *count;
        }
        self.days[d].wip = self.wip_now();
        self.days[d].claims = self.claims_now();
        self.days[d].workers_at_limit = self
            .workers
            .values()
            .filter(|w| w.limit_days.get(d).copied().unwrap_or(false))
            .count() as i64;
    }

    fn worker(&mut self, actor: &Actor) -> &mut WorkerState {
        let w = self.workers.entry(actor.id).or_default();
        if w.kind.is_none() {
            w.name.clone_from(&actor.name);
            w.kind = Some(actor.kind);
        }
        w
    }

    fn enter_lane(&mut self, item_id: i64, lane_id: i64, at_ms: i64) {
        let Some(&to) = self.lane_index.get(&lane_id) else {
            return;
        };
        let day = self.day(at_ms);
        let item = self.items.entry(item_id).or_default();
        if item.lane == Some(lane_id) {
            return;
        }
        let from = item.lane.and_then(|l| self.lane_index.get(&l).copied());
        let entered = item.entered_ms;
        item.lane = Some(lane_id);
        item.entered_ms = at_ms;
        if item.started_ms.is_none() && starts_work(self.lanes[to].role) {
            item.started_ms = Some(at_ms);
        }
        let was_done = item.done;
        item.done = self.lanes[to].role == LaneRole::Done;
        let done_changed = was_done != item.done;
        if let Some(from) = from {
            self.counts[from] -= 1;
            if day.is_some() {
                self.stays[from].push(at_ms - entered);
            }
        }
        self.counts[to] += 1;
        if let Some(d) = day {
            self.lane_peak[to][d] = self.lane_peak[to][d].max(self.counts[to]);
            self.days[d].wip_peak = self.days[d].wip_peak.max(self.wip_now());
        }
        self.refresh_blocked(item_id, at_ms);
        if done_changed && let Some(waiting) = self.dependents.get(&item_id).cloned() {
            for dependent in waiting {
                self.refresh_blocked(dependent, at_ms);
            }
        }
    }

    /// Replaces an item's dependencies (keeping the reverse index) and
    /// re-evaluates whether it waits.
    fn set_blockers(&mut self, item_id: i64, blockers: &[i64], at_ms: i64) {
        let item = self.items.entry(item_id).or_default();
        let old = std::mem::replace(&mut item.blockers, blockers.to_vec());
        for b in old {
            if let Some(list) = self.dependents.get_mut(&b) {
                list.retain(|i| *i != item_id);
            }
        }
        for b in blockers {
            let list = self.dependents.entry(*b).or_default();
            if !list.contains(&item_id) {
                list.push(item_id);
            }
        }
        self.refresh_blocked(item_id, at_ms);
    }

    /// Starts or ends the item's blocked periods as of `at_ms`.
    fn refresh_blocked(&mut self, item_id: i64, at_ms: i64) {
        let Some(item) = self.items.get(&item_id) else {
            return;
        };
        let in_blocked_lane = item
            .lane
            .and_then(|l| self.lane_index.get(&l))
            .is_some_and(|i| self.lanes[*i].role == LaneRole::Blocked);
        // A dependency the history never showed counts as not done.
        let waiting = !item.done
            && item
                .blockers
                .iter()
                .any(|b| self.items.get(b).is_none_or(|bi| !bi.done));
        let from = self.range.from_ms;
        let in_range = self.range.contains(at_ms);
        let clock = &mut self.blocked;
        let Some(item) = self.items.get_mut(&item_id) else {
            return;
        };
        track(
            &mut item.lane_blocked_since,
            in_blocked_lane,
            at_ms,
            from,
            &mut clock.lane_ms,
        );
        if let Some(length) = track(
            &mut item.waiting_since,
            waiting,
            at_ms,
            from,
            &mut clock.dependency_ms,
        ) && in_range
        {
            clock.waits.push(length);
        }
        track(
            &mut item.blocked_since,
            in_blocked_lane || waiting,
            at_ms,
            from,
            &mut clock.total_ms,
        );
    }

    fn lane_after_expiry(&self, item_id: i64) -> Option<i64> {
        let current = self.items.get(&item_id)?.lane?;
        let role = self.lanes.get(*self.lane_index.get(&current)?)?.role;
        let roles = super::queue::lane_after_release(role)?;
        roles
            .iter()
            .find_map(|r| self.lanes.iter().find(|l| l.role == *r))
            .map(|l| l.id)
    }

    fn end_claim(&mut self, item_id: i64) -> Option<i64> {
        let holder = self.items.get_mut(&item_id)?.holder.take()?;
        if let Some(w) = self.workers.get_mut(&holder) {
            w.held = (w.held - 1).max(0);
        }
        Some(holder)
    }

    fn apply(&mut self, event: &FlowEvent) {
        self.events_read += 1;
        self.advance(event.at_ms);
        let at = event.at_ms;
        let day = self.day(at);
        match &event.change {
            Change::Created {
                lane_id,
                blocked_by,
            } => {
                self.items.entry(event.item_id).or_default().created_ms = Some(at);
                self.enter_lane(event.item_id, *lane_id, at);
                if !blocked_by.is_empty() {
                    self.set_blockers(event.item_id, blocked_by, at);
                }
            }
            Change::Dependencies { blocked_by } => {
                self.set_blockers(event.item_id, blocked_by, at);
            }
            Change::Moved {
                to_lane_id,
                claim_ended,
            } => {
                self.enter_lane(event.item_id, *to_lane_id, at);
                if *claim_ended {
                    self.end_claim(event.item_id);
                }
            }
            Change::Claimed { holder } => {
                self.end_claim(event.item_id);
                let item = self.items.entry(event.item_id).or_default();
                item.holder = Some(holder.id);
                item.started_ms.get_or_insert(at);
                let keep = self.range.keeps(Some(holder.kind));
                let limit = self.range.claim_limit;
                let days = self.days.len();
                let w = self.worker(holder);
                w.held += 1;
                let held = w.held;
                if let Some(d) = day
                    && keep
                {
                    w.claims += 1;
                    w.peak = w.peak.max(held);
                    if limit > 0 && held >= limit {
                        mark_limit_day(w, d, days);
                    }
                    self.days[d].claims_peak_per_worker =
                        self.days[d].claims_peak_per_worker.max(held);
                }
            }
            Change::Released { lane_id } => {
                let holder = self.end_claim(event.item_id);
                if let Some(lane) = lane_id {
                    self.enter_lane(event.item_id, *lane, at);
                }
                if let (Some(d), Some(holder)) = (day, holder)
                    && let Some(w) = self.workers.get_mut(&holder)
                    && (self.range.kind.is_none() || self.range.kind == w.kind)
                {
                    w.released += 1;
                    self.days[d].released += 1;
                }
            }
            Change::LeaseExpired => {
                let holder = self.end_claim(event.item_id);
                // The expiry event does not name a lane; the item went where
                // the queue rule sends expired work.
                if let Some(lane) = self.lane_after_expiry(event.item_id) {
                    self.enter_lane(event.item_id, lane, at);
                }
                if let (Some(d), Some(holder)) = (day, holder)
                    && let Some(w) = self.workers.get_mut(&holder)
                    && (self.range.kind.is_none() || self.range.kind == w.kind)
                {
                    w.expired += 1;
                    match w.kind {
                        Some(WorkerKind::Agent) => self.days[d].expired_agent += 1,
                        _ => self.days[d].expired_human += 1,
                    }
                }
            }
            Change::Done => {
                let Some(d) = day else { return };
                let item = self.items.entry(event.item_id).or_default();
                let finisher = match &event.actor {
                    Some(actor) => Some((actor.id, actor.kind)),
                    None => item
                        .holder
                        .and_then(|h| self.workers.get(&h).and_then(|w| Some((h, w.kind?)))),
                };
                let kind = finisher.map(|(_, k)| k);
                if !self.range.keeps(kind) {
                    return;
                }
                let (created, started) = (item.created_ms, item.started_ms);
                match kind {
                    Some(WorkerKind::Agent) => self.days[d].done_agent += 1,
                    _ => self.days[d].done_human += 1,
                }
                if let Some(actor) = &event.actor {
                    self.worker(actor).done += 1;
                }
                let slot = kind_slot(kind);
                if let Some(created) = created {
                    self.lead[0].push(at - created);
                    if let Some(s) = slot {
                        self.lead[s].push(at - created);
                    }
                }
                if let Some(started) = started {
                    self.cycle[0].push(at - started);
                    if let Some(s) = slot {
                        self.cycle[s].push(at - started);
                    }
                }
            }
        }
    }

    fn finish(mut self) -> FlowReport {
        let end = self.range.end_ms();
        self.advance(end);
        // Blocked periods still running at the end count up to it.
        let from = self.range.from_ms;
        let running = |since: Option<i64>| since.map_or(0, |s| (end - s.max(from)).max(0));
        let mut waiting_at_end = 0;
        for item in self.items.values() {
            self.blocked.lane_ms += running(item.lane_blocked_since);
            self.blocked.dependency_ms += running(item.waiting_since);
            self.blocked.total_ms += running(item.blocked_since);
            waiting_at_end += i64::from(item.waiting_since.is_some());
        }
        let blocked_index: Vec<usize> = (0..self.lanes.len())
            .filter(|i| self.lanes[*i].role == LaneRole::Blocked)
            .collect();
        let blocked = BlockedTime {
            total_seconds: self.blocked.total_ms / 1000,
            lane_seconds: self.blocked.lane_ms / 1000,
            dependency_seconds: self.blocked.dependency_ms / 1000,
            stays: Percentiles::of(
                blocked_index
                    .iter()
                    .flat_map(|i| self.stays[*i].iter().copied())
                    .collect(),
            ),
            dependency_waits: Percentiles::of(std::mem::take(&mut self.blocked.waits)),
            blocked_at_end: blocked_index.iter().map(|i| self.counts[*i]).sum(),
            waiting_at_end,
        };
        let lanes = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, lane)| LaneFlow {
                lane_id: lane.id,
                name: lane.name.clone(),
                role: lane.role,
                wip_limit: lane.wip_limit,
                stay: Percentiles::of(std::mem::take(&mut self.stays[i])),
                end_of_day: std::mem::take(&mut self.lane_end[i]),
                peak: std::mem::take(&mut self.lane_peak[i]),
                now: self.counts[i],
            })
            .collect();
        let mut workers: Vec<WorkerFlow> = self
            .workers
            .into_iter()
            .filter_map(|(id, w)| {
                let kind = w.kind?;
                let active = w.done + w.claims + w.expired + w.released + w.held > 0;
                (active && (self.range.kind.is_none() || self.range.kind == Some(kind))).then(
                    || WorkerFlow {
                        id,
                        name: w.name.to_string(),
                        kind,
                        done: w.done,
                        claims: w.claims,
                        peak_held: w.peak.max(w.held),
                        held_at_end: w.held,
                        days_at_limit: w.limit_days.iter().filter(|d| **d).count() as i64,
                        leases_expired: w.expired,
                        released: w.released,
                    },
                )
            })
            .collect();
        workers.sort_by(|a, b| {
            (b.peak_held, b.leases_expired, b.done)
                .cmp(&(a.peak_held, a.leases_expired, a.done))
                .then_with(|| a.name.cmp(&b.name))
        });
        let [cycle_all, cycle_human, cycle_agent] = self.cycle;
        let [lead_all, lead_human, lead_agent] = self.lead;
        let done_total = self.days.iter().map(|d| d.done_human + d.done_agent).sum();
        let expired_total = self
            .days
            .iter()
            .map(|d| d.expired_human + d.expired_agent)
            .sum();
        FlowReport {
            board_id: 0,
            from: date_of(self.range.from_ms),
            to: date_of(self.range.end_ms() - DAY_MS),
            kind: self.range.kind,
            claim_limit: self.range.claim_limit,
            events_read: self.events_read,
            days: self.days,
            cycle_time: TimeByKind {
                all: Percentiles::of(cycle_all),
                human: Percentiles::of(cycle_human),
                agent: Percentiles::of(cycle_agent),
            },
            lead_time: TimeByKind {
                all: Percentiles::of(lead_all),
                human: Percentiles::of(lead_human),
                agent: Percentiles::of(lead_agent),
            },
            lanes,
            workers,
            blocked,
            done_total,
            expired_total,
        }
    }
}

fn mark_limit_day(w: &mut WorkerState, d: usize, days: usize) {
    if w.limit_days.len() < days {
        w.limit_days.resize(days, false);
    }
    if let Some(slot) = w.limit_days.get_mut(d) {
        *slot = true;
    }
}

/// The range asked for, as parsed from `from`/`to` (`YYYY-MM-DD`, UTC,
/// inclusive) and `kind`: by default the 30 days ending today.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    kind: Option<&str>,
    now_ms: i64,
) -> Result<FlowRange, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut day = |field: &str, value: Option<&str>| -> Option<i64> {
        let value = value.map(str::trim).filter(|v| !v.is_empty())?;
        match parse_date(value) {
            Some(ms) => Some(ms),
            None => {
                errors.add(field, "must be a date written YYYY-MM-DD");
                None
            }
        }
    };
    let to_ms = day("to", to);
    let from_ms = day("from", from);
    let kind = match kind.map(str::trim).filter(|k| !k.is_empty() && *k != "all") {
        None => None,
        Some(k) => match WorkerKind::parse(k) {
            Some(kind) => Some(kind),
            None => {
                errors.add("kind", "must be human, agent or all");
                None
            }
        },
    };
    errors.clone().into_result()?;
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let to_ms = to_ms.unwrap_or(today);
    let from_ms = from_ms.unwrap_or(to_ms - 29 * DAY_MS);
    let days = (to_ms - from_ms) / DAY_MS + 1;
    if days < 1 {
        errors.add("from", "must not be after to");
    } else if days > MAX_DAYS {
        errors.add(
            "from",
            format!("the range may cover at most {MAX_DAYS} days"),
        );
    }
    errors.into_result()?;
    Ok(FlowRange {
        from_ms,
        days,
        kind,
        // The board's, filled in by whoever loads it.
        claim_limit: 0,
    })
}

/// Midnight UTC of `YYYY-MM-DD`, in milliseconds.
pub fn parse_date(value: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(value, &format).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Replays `events` (in history order, from the board's beginning up to
/// the end of the range) over `lanes` (in board order).
pub fn analyze(
    range: FlowRange,
    lanes: &[LaneInfo],
    events: impl IntoIterator<Item = FlowEvent>,
) -> FlowReport {
    let mut analysis = Analysis::new(range, lanes);
    for event in events {
        analysis.push(&event);
    }
    analysis.finish()
}

/// [`analyze`] one event at a time, for callers that stream the history
/// instead of collecting it first.
pub struct Analysis<'a>(Replay<'a>);

impl std::fmt::Debug for Analysis<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis")
            .field("events_read", &self.0.events_read)
            .finish_non_exhaustive()
    }
}

impl<'a> Analysis<'a> {
    pub fn new(range: FlowRange, lanes: &'a [LaneInfo]) -> Self {
        Self(Replay::new(range, lanes))
    }

    /// The next event in history order; events at or after the end of the
    /// range are ignored.
    pub fn push(&mut self, event: &FlowEvent) {
        if event.at_ms < self.0.range.end_ms() {
            self.0.apply(event);
        }
    }

    pub fn finish(self) -> FlowReport {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn lanes() -> Vec<LaneInfo> {
        [
            (1, LaneRole::Ready, None),
            (2, LaneRole::InProgress, Some(2)),
            (3, LaneRole::Blocked, None),
            (4, LaneRole::Done, None),
        ]
        .into_iter()
        .map(|(id, role, wip_limit)| LaneInfo {
            id,
            name: role.as_str().into(),
            role,
            wip_limit,
        })
        .collect()
    }

    fn agent() -> Actor {
        Actor {
            id: 7,
            name: "bot".into(),
            kind: WorkerKind::Agent,
        }
    }

    fn ev(item_id: i64, at_ms: i64, actor: Option<Actor>, change: Change) -> FlowEvent {
        FlowEvent {
            item_id,
            at_ms,
            actor,
            change,
        }
    }

    /// Item `item_id` created in lane 1 at `at_ms`, blocked by nothing.
    fn created(item_id: i64, at_ms: i64) -> FlowEvent {
        ev(
            item_id,
            at_ms,
            None,
            Change::Created {
                lane_id: 1,
                blocked_by: vec![],
            },
        )
    }

    fn range(days: i64) -> FlowRange {
        FlowRange {
            from_ms: 0,
            days,
            kind: None,
            claim_limit: 1,
        }
    }

    #[test]
    fn ranges_default_to_thirty_days_and_refuse_nonsense() {
        let now = parse_date("2026-03-31").unwrap_or_default() + 5 * H;
        let r = parse_range(None, None, None, now).expect("default");
        assert_eq!(r.days, 30);
        assert_eq!(date_of(r.from_ms), "2026-03-02");
        let r = parse_range(Some("2026-03-01"), Some("2026-03-01"), Some("agent"), now)
            .expect("one day");
        assert_eq!((r.days, r.kind), (1, Some(WorkerKind::Agent)));
        assert!(parse_range(Some("2026-03-02"), Some("2026-03-01"), None, now).is_err());
        assert!(parse_range(Some("2020-01-01"), Some("2026-03-01"), None, now).is_err());
        assert!(parse_range(Some("yesterday"), None, None, now).is_err());
        assert!(parse_range(None, None, Some("robot"), now).is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=20).map(|h| h * H).collect());
        assert_eq!(p.count, 20);
        assert_eq!(p.p50_seconds, Some(10 * 3600));
        assert_eq!(p.p85_seconds, Some(17 * 3600));
        assert_eq!(p.p95_seconds, Some(19 * 3600));
        assert_eq!(p.max_seconds, Some(20 * 3600));
        assert_eq!(Percentiles::of(vec![]).p50_seconds, None);
        assert_eq!(Percentiles::of(vec![5000]).p95_seconds, Some(5));
    }

    #[test]
    fn one_item_through_the_board_gives_its_cycle_lead_and_stays() {
        let a = agent();
        let events = vec![
            created(1, H),
            ev(
                1,
                3 * H,
                Some(a.clone()),
                Change::Claimed { holder: a.clone() },
            ),
            ev(
                1,
                3 * H,
                Some(a.clone()),
                Change::Moved {
                    to_lane_id: 2,
                    claim_ended: false,
                },
            ),
            ev(
                1,
                5 * H,
                Some(a.clone()),
                Change::Moved {
                    to_lane_id: 3,
                    claim_ended: false,
                },
            ),
            ev(
                1,
                30 * H,
                Some(a.clone()),
                Change::Moved {
                    to_lane_id: 4,
                    claim_ended: true,
                },
            ),
            ev(1, 30 * H, Some(a.clone()), Change::Done),
        ];
        let report = analyze(range(2), &lanes(), events);
        assert_eq!(report.done_total, 1);
        assert_eq!(report.days[1].done_agent, 1);
        assert_eq!(report.cycle_time.agent.p50_seconds, Some(27 * 3600));
        assert_eq!(report.lead_time.all.p50_seconds, Some(29 * 3600));
        assert_eq!(report.cycle_time.human.count, 0);
        assert_eq!(report.lanes[0].stay.p50_seconds, Some(2 * 3600));
        assert_eq!(report.lanes[2].stay.p50_seconds, Some(25 * 3600));
        assert_eq!(report.blocked.total_seconds, 25 * 3600);
        // Day 0 ends with the item blocked; day 1 with it done.
        assert_eq!(report.lanes[2].end_of_day, vec![1, 0]);
        assert_eq!(report.lanes[3].end_of_day, vec![0, 1]);
        assert_eq!(report.days[0].wip, 0);
        assert_eq!(report.days[0].wip_peak, 1);
        // One claim against a limit of one: at the limit on both days.
        assert_eq!(report.days[0].claims_peak_per_worker, 1);
        assert_eq!(report.days[1].workers_at_limit, 1);
        assert_eq!(report.days[1].claims, 0);
        assert_eq!(report.workers[0].days_at_limit, 2);
        assert_eq!(report.workers[0].done, 1);
    }

    #[test]
    fn expiries_and_releases_count_by_holder_and_the_kind_filter_applies() {
        let a = agent();
        let human = Actor {
            id: 8,
            name: "ann".into(),
            kind: WorkerKind::Human,
        };
        let events = vec![
            created(1, 0),
            created(2, 0),
            ev(1, H, Some(a.clone()), Change::Claimed { holder: a.clone() }),
            ev(1, 2 * H, None, Change::LeaseExpired),
            ev(
                2,
                2 * H,
                Some(human.clone()),
                Change::Claimed {
                    holder: human.clone(),
                },
            ),
            ev(
                2,
                3 * H,
                Some(human.clone()),
                Change::Released { lane_id: Some(1) },
            ),
        ];
        let all = analyze(range(1), &lanes(), events.clone());
        assert_eq!(all.days[0].expired_agent, 1);
        assert_eq!(all.days[0].expired_human, 0);
        assert_eq!(all.days[0].released, 1);
        assert_eq!(all.expired_total, 1);
        let humans = analyze(
            FlowRange {
                kind: Some(WorkerKind::Human),
                ..range(1)
            },
            &lanes(),
            events,
        );
        assert_eq!(humans.expired_total, 0);
        assert_eq!(humans.days[0].released, 1);
        assert_eq!(humans.workers.len(), 1);
        assert_eq!(humans.workers[0].name, "ann");
    }

    #[test]
    fn history_before_the_range_sets_the_starting_state_only() {
        let events = vec![
            created(1, 0),
            ev(
                1,
                H,
                None,
                Change::Moved {
                    to_lane_id: 2,
                    claim_ended: false,
                },
            ),
        ];
        let report = analyze(
            FlowRange {
                from_ms: DAY_MS,
                ..range(2)
            },
            &lanes(),
            events,
        );
        assert_eq!(report.lanes[1].end_of_day, vec![1, 1]);
        assert_eq!(report.lanes[0].stay.count, 0);
        assert_eq!(report.days[0].date, "1970-01-02");
        assert_eq!(report.days[1].wip, 1);
    }
}
