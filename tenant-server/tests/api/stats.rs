//! Flow analytics (issue 14) against a seeded history: 30 days of work
//! written through the store's own commands with chosen timestamps, so
//! every figure of `GET /api/boards/{id}/stats` can be computed by hand
//! (the expected values below are worked out in the comments).

use crate::support::TestServer;
use serde_json::{Value, json};
use taskharbor::commands;
use taskharbor::domain::Principal;
use taskharbor::domain::board::LaneRole;
use taskharbor::domain::flow::parse_date;
use taskharbor::domain::item::{ItemPatch, ItemPatchInput, NewItem, NewItemInput};

/// The history the dashboard benchmark replays (`benches/dashboard.rs`),
/// checked here at a size whose figures are worked out by hand.
#[path = "../../benches/fixtures/flow_history.rs"]
mod flow_history;
use taskharbor::store::queue::MoveTarget;
use taskharbor::store::tokens;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

struct Seeder<'a> {
    server: &'a TestServer,
    board: i64,
    base: i64,
}

impl Seeder<'_> {
    async fn principal(&self, secret: &str) -> Principal {
        tokens::authenticate(&self.server.state.store.reader, secret, self.base)
            .await
            .expect("authenticate")
            .expect("known token")
            .0
    }

    /// `day` days and `hour` hours after 2026-01-01 00:00 UTC.
    fn at(&self, day: i64, hour: i64) -> i64 {
        self.base + day * DAY + hour * HOUR
    }

    async fn create(&self, who: &Principal, title: &str, lane: Option<i64>, at: i64) -> i64 {
        self.create_waiting(who, title, lane, &[], at).await
    }

    async fn create_waiting(
        &self,
        who: &Principal,
        title: &str,
        lane: Option<i64>,
        blocked_by: &[i64],
        at: i64,
    ) -> i64 {
        let new = NewItem::parse(NewItemInput {
            title,
            agent_ready: Some(true),
            lane_id: lane,
            blocked_by: (!blocked_by.is_empty()).then_some(blocked_by),
            ..NewItemInput::default()
        })
        .expect("valid item");
        commands::items::create(&self.server.state.store, who, self.board, &new, at)
            .await
            .expect("create")
            .id
    }

    async fn claim(&self, who: &Principal, item: i64, start: bool, at: i64) {
        commands::queue::claim(&self.server.state.store, who, item, start, None, at)
            .await
            .expect("claim");
    }

    async fn wait_for(&self, who: &Principal, item: i64, blocked_by: &[i64], at: i64) {
        let patch = ItemPatch::parse(ItemPatchInput {
            blocked_by: Some(blocked_by),
            ..ItemPatchInput::default()
        })
        .expect("valid patch");
        commands::items::update(&self.server.state.store, who, item, &patch, None, None, at)
            .await
            .expect("update");
    }

    async fn move_to(&self, who: &Principal, item: i64, role: LaneRole, at: i64) {
        commands::queue::move_item(
            &self.server.state.store,
            who,
            item,
            MoveTarget::Status(role),
            None,
            None,
            at,
        )
        .await
        .expect("move");
    }
}

/// The seeded board (30 days from 2026-01-01, UTC):
/// - days 0–19: item d is created at 08:00, claimed by agent bot-a at 09:00
///   (moved to In Progress) and done after d+1 hours: cycle d+1 h, lead d+2 h;
///   items 14–19 finish after midnight, so day 14 has none;
/// - day 21: human hana claims three items (created 09:00) at 10:00 and
///   holds them (her claim limit of 3) until 10:00 on day 22, when she moves
///   them straight to Done: cycle 24 h, lead 25 h, Ready stays 25 h;
/// - day 25: bot-b claims two items (created 11:00) at 12:00; their 30-min
///   leases are reaped at 13:00 (two lost agent leases, back to Ready);
/// - day 26: hana claims an item at 09:00 and releases it at 11:00;
/// - day 27 00:00 to day 28 00:00: an item sits in Blocked (24 h); from day
///   29 12:00 another one does, to the end of the range (12 h more).
pub(crate) async fn seeded() -> (TestServer, i64) {
    // The background reaper would expire the seeded claims at today's
    // time; this test expires them itself, at the seeded time.
    let server = TestServer::start_with(|c| c.reaper_interval_ms = 3_600_000).await;
    let board = server.board("FLOW").await;
    let base = parse_date("2026-01-01").expect("date");
    let seed = Seeder {
        server: &server,
        board,
        base,
    };
    let admin = seed.principal(&server.admin).await;
    let bot_a = seed.principal(&server.agent("bot-a").await).await;
    let bot_b = seed.principal(&server.agent("bot-b").await).await;
    let hana = seed.principal(&server.human("hana").await).await;
    let backlog = server.lane_id(board, "backlog").await;

    for d in 0..20 {
        let item = seed
            .create(&admin, &format!("agent item {d}"), None, seed.at(d, 8))
            .await;
        seed.claim(&bot_a, item, true, seed.at(d, 9)).await;
        seed.move_to(&bot_a, item, LaneRole::Done, seed.at(d, 10 + d))
            .await;
    }
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(
            seed.create(&admin, &format!("human item {n}"), None, seed.at(21, 9))
                .await,
        );
    }
    for item in &held {
        seed.claim(&hana, *item, false, seed.at(21, 10)).await;
    }
    for item in &held {
        seed.move_to(&hana, *item, LaneRole::Done, seed.at(22, 10))
            .await;
    }
    for n in 0..2 {
        let item = seed
            .create(&admin, &format!("lost lease {n}"), None, seed.at(25, 11))
            .await;
        seed.claim(&bot_b, item, true, seed.at(25, 12)).await;
    }
    let reaped = commands::queue::reap_expired(&server.state.store, 100, seed.at(25, 13))
        .await
        .expect("reap");
    assert_eq!(reaped.len(), 2);
    let released = seed
        .create(&admin, "given back", None, seed.at(26, 8))
        .await;
    seed.claim(&hana, released, false, seed.at(26, 9)).await;
    commands::queue::release(
        &server.state.store,
        &hana,
        released,
        None,
        None,
        seed.at(26, 11),
    )
    .await
    .expect("release");
    let stuck = seed
        .create(&admin, "stuck a day", Some(backlog), seed.at(27, 0))
        .await;
    seed.move_to(&admin, stuck, LaneRole::Blocked, seed.at(27, 0))
        .await;
    seed.move_to(&admin, stuck, LaneRole::Ready, seed.at(28, 0))
        .await;
    let still = seed
        .create(&admin, "still stuck", Some(backlog), seed.at(29, 12))
        .await;
    seed.move_to(&admin, still, LaneRole::Blocked, seed.at(29, 12))
        .await;
    (server, board)
}

fn hours(p: &Value, which: &str) -> i64 {
    p[format!("{which}_seconds")].as_i64().unwrap_or(-1) / 3600
}

fn lane<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["lanes"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("lane {name} in {stats}"))
}

#[tokio::test]
async fn stats_match_figures_worked_out_by_hand_from_a_seeded_month() {
    let (server, board) = seeded().await;
    let path = format!("/api/boards/{board}/stats?from=2026-01-01&to=2026-01-30");
    let stats = server.get(&server.admin, &path).await.expect(200);
    assert_eq!(stats["from"], "2026-01-01");
    assert_eq!(stats["to"], "2026-01-30");
    let days = stats["days"].as_array().expect("days");
    assert_eq!(days.len(), 30);
    assert_eq!(days[0]["date"], "2026-01-01");

    // Throughput: one agent item a day on days 0–13 and 15–20, none on 14.
    assert_eq!(stats["done_total"], 23);
    for d in (0..14).chain(15..21) {
        assert_eq!(days[d]["done_agent"], 1, "day {d}");
    }
    assert_eq!(days[14]["done_agent"], 0);
    assert_eq!(days[22]["done_human"], 3);

    // Cycle: agents 1..=20 h; humans 24 h x3. Nearest rank:
    // all (23 values) p50 = 12th = 12 h, p85 = 20th = 20 h, p95 = 22nd = 24 h.
    let cycle = &stats["cycle_time"];
    assert_eq!(
        (
            hours(&cycle["all"], "p50"),
            hours(&cycle["all"], "p85"),
            hours(&cycle["all"], "p95")
        ),
        (12, 20, 24)
    );
    assert_eq!(
        (
            hours(&cycle["agent"], "p50"),
            hours(&cycle["agent"], "p85"),
            hours(&cycle["agent"], "p95")
        ),
        (10, 17, 19)
    );
    assert_eq!(hours(&cycle["human"], "p50"), 24);
    assert_eq!(cycle["human"]["count"], 3);
    // Lead: agents 2..=21 h, humans 25 h x3: 13th-ranked... p50 = 13 h,
    // p85 = 21 h, p95 = 25 h.
    let lead = &stats["lead_time"]["all"];
    assert_eq!(
        (hours(lead, "p50"), hours(lead, "p85"), hours(lead, "p95")),
        (13, 21, 25)
    );

    // Where it waits. Ready: 22 stays of 1 h and 3 of 25 h -> p50 1 h,
    // p85 (22nd) 1 h, p95 (24th) 25 h. In Progress: 1..=20 h and two 1 h
    // stays ended by the lease expiries -> p50 (11th) 9 h, p85 (19th) 17 h,
    // p95 (21st) 19 h.
    let ready = &lane(&stats, "Ready")["stay"];
    assert_eq!(ready["count"], 25);
    assert_eq!(
        (
            hours(ready, "p50"),
            hours(ready, "p85"),
            hours(ready, "p95")
        ),
        (1, 1, 25)
    );
    let doing = &lane(&stats, "In Progress")["stay"];
    assert_eq!(doing["count"], 22);
    assert_eq!(
        (
            hours(doing, "p50"),
            hours(doing, "p85"),
            hours(doing, "p95")
        ),
        (9, 17, 19)
    );

    // Cumulative flow: items in Done at the end of days 13, 14, 15, 29.
    let done = &lane(&stats, "Done")["end_of_day"];
    assert_eq!(
        (
            done[13].clone(),
            done[14].clone(),
            done[15].clone(),
            done[29].clone()
        ),
        (json!(14), json!(14), json!(15), json!(23))
    );
    assert_eq!(lane(&stats, "Ready")["now"], 4);

    // Leases: two agent expiries on day 25, one release on day 26.
    assert_eq!(stats["expired_total"], 2);
    assert_eq!(days[25]["expired_agent"], 2);
    assert_eq!(days[26]["released"], 1);
    // Claim limit: hana held 3 of 3 on days 21 and 22.
    assert_eq!(days[21]["claims_peak_per_worker"], 3);
    assert_eq!(days[21]["workers_at_limit"], 1);
    assert_eq!(days[22]["workers_at_limit"], 1);
    assert_eq!(days[23]["workers_at_limit"], 0);
    let workers = stats["workers"].as_array().expect("workers");
    assert_eq!(workers[0]["name"], "hana");
    assert_eq!(workers[0]["days_at_limit"], 2);
    assert_eq!(workers[0]["peak_held"], 3);
    let bot_b = workers
        .iter()
        .find(|w| w["name"] == "bot-b")
        .expect("bot-b");
    assert_eq!(
        (bot_b["claims"].clone(), bot_b["leases_expired"].clone()),
        (json!(2), json!(2))
    );
    // WIP: bot-a's item is in progress on each of days 0–13.
    assert_eq!(days[3]["wip_peak"], 1);
    assert_eq!(days[3]["wip"], 0);

    // Blocked: 24 h ended, 12 h still running at the end of the range.
    assert_eq!(stats["blocked"]["total_seconds"], 36 * 3600);
    assert_eq!(stats["blocked"]["stays"]["count"], 1);
    assert_eq!(hours(&stats["blocked"]["stays"], "p50"), 24);
    assert_eq!(stats["blocked"]["blocked_at_end"], 1);

    // Humans only: their three items, no lost leases, one release.
    let humans = server
        .get(&server.admin, &format!("{path}&kind=human"))
        .await
        .expect(200);
    assert_eq!(humans["kind"], "human");
    assert_eq!(humans["done_total"], 3);
    assert_eq!(humans["expired_total"], 0);
    assert_eq!(hours(&humans["cycle_time"]["all"], "p95"), 24);
    assert!(
        humans["workers"]
            .as_array()
            .is_some_and(|w| w.iter().all(|w| w["kind"] == "human"))
    );

    // A range that ends earlier sees an earlier state.
    let early = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/stats?from=2026-01-01&to=2026-01-10"),
        )
        .await
        .expect(200);
    assert_eq!(early["done_total"], 10);
    assert_eq!(early["days"].as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn stats_refuse_bad_ranges_and_other_boards() {
    let server = TestServer::start().await;
    let board = server.board("ONE").await;
    let other = server.board("TWO").await;
    let path = format!("/api/boards/{board}/stats");
    for query in [
        "?from=2026-02-01&to=2026-01-01",
        "?from=2020-01-01&to=2026-01-01",
        "?to=tomorrow",
        "?kind=robot",
    ] {
        server
            .get(&server.admin, &format!("{path}{query}"))
            .await
            .expect_error(422, "validation_failed");
    }
    // Defaults: the last 30 days, today included.
    let stats = server.get(&server.admin, &path).await.expect(200);
    assert_eq!(stats["days"].as_array().map(Vec::len), Some(30));
    assert_eq!(stats["done_total"], 0);
    // Board confinement: another board's stats do not exist for this token.
    let confined = server
        .token("reader", "agent", &["queue:read"], Some(board))
        .await;
    server.get(&confined, &path).await.expect(200);
    server
        .get(&confined, &format!("/api/boards/{other}/stats"))
        .await
        .expect_error(404, "not_found");
    server
        .send(None, reqwest::Method::GET, &path, None, &[])
        .await
        .expect_error(401, "unauthorized");
}

/// Blocked time counts an open item waiting for unfinished dependencies
/// as well as time in a blocked lane (the union, so an item both waiting
/// and in a blocked lane counts once). Three days from 2026-02-01, UTC:
/// - day 0 08:00: P created; W created waiting for P (dependency wait
///   starts); 10:00 Q created; 12:00 W edited to wait for P and Q;
/// - day 1 08:00: P done (W still waits for Q); 18:00 W moved to Blocked;
///   20:00 Q done: W's dependency wait ends after 36 h;
/// - day 2 06:00: W moved to Ready: 12 h in Blocked, 2 of them (18:00 to
///   20:00) also waiting, so W is blocked 36 + 12 - 2 = 46 h in all;
/// - day 2 00:00: R created, X created waiting for R (open to the end of the
///   range: 24 h, still waiting at the end); Y created waiting for P,
///   which is done already (no wait).
///
/// Expected: dependency waits 36 + 24 = 60 h; blocked lane 12 h; blocked
/// in all 46 + 24 = 70 h; one item waiting at the end, none in Blocked.
#[tokio::test]
async fn waiting_for_open_dependencies_counts_as_blocked_time() {
    let server = TestServer::start_with(|c| c.reaper_interval_ms = 3_600_000).await;
    let board = server.board("DEPS").await;
    let base = parse_date("2026-02-01").expect("date");
    let seed = Seeder {
        server: &server,
        board,
        base,
    };
    let admin = seed.principal(&server.admin).await;
    let backlog = server.lane_id(board, "backlog").await;
    let p = seed.create(&admin, "P", Some(backlog), seed.at(0, 8)).await;
    let w = seed
        .create_waiting(&admin, "W", Some(backlog), &[p], seed.at(0, 8))
        .await;
    let q = seed
        .create(&admin, "Q", Some(backlog), seed.at(0, 10))
        .await;
    seed.wait_for(&admin, w, &[p, q], seed.at(0, 12)).await;
    seed.move_to(&admin, p, LaneRole::Done, seed.at(1, 8)).await;
    seed.move_to(&admin, w, LaneRole::Blocked, seed.at(1, 18))
        .await;
    seed.move_to(&admin, q, LaneRole::Done, seed.at(1, 20))
        .await;
    seed.move_to(&admin, w, LaneRole::Ready, seed.at(2, 6))
        .await;
    let r = seed.create(&admin, "R", Some(backlog), seed.at(2, 0)).await;
    seed.create_waiting(&admin, "X", Some(backlog), &[r], seed.at(2, 0))
        .await;
    seed.create_waiting(&admin, "Y", Some(backlog), &[p], seed.at(2, 0))
        .await;

    let stats = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/stats?from=2026-02-01&to=2026-02-03"),
        )
        .await
        .expect(200);
    let blocked = &stats["blocked"];
    assert_eq!(blocked["dependency_seconds"], 60 * 3600, "{blocked}");
    assert_eq!(blocked["lane_seconds"], 12 * 3600, "{blocked}");
    assert_eq!(blocked["total_seconds"], 70 * 3600, "{blocked}");
    assert_eq!(blocked["waiting_at_end"], 1, "{blocked}");
    assert_eq!(blocked["blocked_at_end"], 0, "{blocked}");
    // W's finished wait is one ended dependency wait of 36 h.
    assert_eq!(blocked["dependency_waits"]["count"], 1, "{blocked}");
    assert_eq!(hours(&blocked["dependency_waits"], "p50"), 36);

    // A new event changes the answer at once (answers are cached by the
    // board's latest event): R done at day 2 12:00 ends X's wait after 12 h.
    seed.move_to(&admin, r, LaneRole::Done, seed.at(2, 12))
        .await;
    let after = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/stats?from=2026-02-01&to=2026-02-03"),
        )
        .await
        .expect(200);
    assert_eq!(after["blocked"]["dependency_seconds"], 48 * 3600);
    assert_eq!(after["blocked"]["waiting_at_end"], 0);
    assert_eq!(after["blocked"]["dependency_waits"]["count"], 2);

    // The first day alone: W waits 16 h (08:00 to midnight), nobody else.
    let first = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/stats?from=2026-02-01&to=2026-02-01"),
        )
        .await
        .expect(200);
    assert_eq!(first["blocked"]["dependency_seconds"], 16 * 3600);
    assert_eq!(first["blocked"]["waiting_at_end"], 1);
}

/// The benchmark's history (`benches/fixtures/flow_history.rs`) at 300
/// items over 30 days: item n has cycle time 1 + n % 30 h and lead time
/// 2 + n % 30 h, so each of 1..=30 h occurs 10 times. Nearest rank over
/// 300: p50 = 150th = 15 h, p85 = 255th = 26 h, p95 = 285th = 29 h. Agents
/// (even n) have the odd cycle times 1, 3, …, 29 h, 10 each: p50 = 75th =
/// 15 h, p95 = 143rd = 29 h. Five events per item; every item is done in
/// the range, half of them by agents.
#[tokio::test]
async fn the_benchmark_history_gives_the_figures_worked_out_by_hand() {
    let server = TestServer::start().await;
    let board = server.board("BENCH").await;
    let from = parse_date("2026-01-01").expect("date");
    let mut conn = server.state.store.writer.acquire().await.expect("conn");
    let written = flow_history::seed(&mut conn, board, from, 30, 300)
        .await
        .expect("seed");
    drop(conn);
    assert_eq!(written, 300 * flow_history::EVENTS_PER_ITEM);
    let stats = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/stats?from=2026-01-01&to=2026-01-30"),
        )
        .await
        .expect(200);
    assert_eq!(stats["events_read"], 1500);
    assert_eq!(stats["done_total"], 300);
    let days = stats["days"].as_array().expect("days");
    let agents: i64 = days.iter().filter_map(|d| d["done_agent"].as_i64()).sum();
    assert_eq!(agents, 150);
    let cycle = &stats["cycle_time"];
    assert_eq!(
        (
            hours(&cycle["all"], "p50"),
            hours(&cycle["all"], "p85"),
            hours(&cycle["all"], "p95")
        ),
        (15, 26, 29)
    );
    assert_eq!(
        (hours(&cycle["agent"], "p50"), hours(&cycle["agent"], "p95")),
        (15, 29)
    );
    let lead = &stats["lead_time"]["all"];
    assert_eq!((hours(lead, "p50"), hours(lead, "max")), (16, 31));
    assert_eq!(lane(&stats, "Done")["now"], 300);
    assert_eq!(stats["workers"].as_array().map(Vec::len), Some(8));
}
