//! The read-ahead reads what `claim-next` reads next, and only after commits.

use super::*;
use crate::domain::board::NewBoard;
use crate::domain::item::{NewItem, NewItemInput};
use crate::domain::{Principal, Scope, WorkerKind};
use crate::store::queue::{self, QueueFilter};
use crate::store::{Durability, Store, now_ms};
use std::time::Instant;

fn agent(worker_id: i64, scopes: Vec<Scope>) -> Principal {
    Principal {
        token_id: 0,
        worker_id,
        worker_name: format!("w{worker_id}"),
        worker_kind: WorkerKind::Agent,
        scopes,
        board_id: None,
    }
}

/// A migrated store in a temporary directory (kept while the guard lives).
async fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path(), Durability::Normal, 2)
        .await
        .expect("open store");
    (dir, store)
}

/// Agents may take any item of `board`, not only agent-ready ones.
async fn agents_take_all(store: &Store, board: i64) {
    sqlx::query("UPDATE boards SET agents_need_ready = 0 WHERE id = ?")
        .bind(board)
        .execute(&store.writer)
        .await
        .expect("board");
}

async fn new_worker(store: &Store, name: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO workers (name, kind, created_at) VALUES (?, 'agent', ?) RETURNING id",
    )
    .bind(name)
    .bind(now_ms())
    .fetch_one(&store.writer)
    .await
    .expect("worker")
}

async fn new_board(store: &Store, name: &str, key: &str) -> i64 {
    let new_board = NewBoard::parse(name, key).expect("board");
    let now = now_ms();
    store
        .run(move |tx| super::super::boards::create(tx, None, &new_board, now))
        .await
        .expect("create board")
        .id
}

async fn new_items(store: &Store, admin: &Principal, board: i64, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        let title = format!("item {n}");
        let body = "a body long enough to spill into overflow pages ".repeat(n % 3 * 60);
        let new = NewItem::parse(NewItemInput {
            title: &title,
            body: Some(&body),
            kind: None,
            parent_id: None,
            priority: None,
            labels: None,
            agent_ready: Some(true),
            blocked_by: None,
            lane_id: None,
        })
        .expect("item");
        let (admin, now) = (admin.clone(), now_ms());
        let item = store
            .run(move |tx| super::super::items::create(tx, &admin, board, &new, now))
            .await
            .expect("create item");
        ids.push(item.id);
    }
    ids
}

/// `(id, priority, open, agent_ready)` of a board's items, in id order.
async fn items_of(store: &Store, board: i64) -> Vec<(i64, i64, bool, bool)> {
    sqlx::query_as(
        "SELECT id, priority, open, agent_ready FROM items WHERE board_id = ? ORDER BY id",
    )
    .bind(board)
    .fetch_all(&store.writer)
    .await
    .expect("items")
}

/// The queue order worked out in Rust: open items (agent-ready ones only
/// when `ready_only`) by priority, then id.
fn queue_order(items: &[(i64, i64, bool, bool)], ready_only: bool) -> Vec<i64> {
    let mut open: Vec<(i64, i64)> = items
        .iter()
        .filter(|(_, _, open, ready)| *open && (*ready || !ready_only))
        .map(|(id, priority, _, _)| (*priority, *id))
        .collect();
    open.sort_unstable();
    open.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn a_round_reads_each_board_s_queue_in_the_order_claim_next_takes_it() {
    let (_dir, store) = scratch().await;
    let admin = agent(new_worker(&store, "admin").await, vec![Scope::Admin]);
    // Agents take only agent-ready items on `agents` (the default); on
    // `anyone` they take everything.
    let agents = new_board(&store, "Agents", "AGT").await;
    let anyone = new_board(&store, "Anyone", "ANY").await;
    agents_take_all(&store, anyone).await;
    let on_agents = new_items(&store, &admin, agents, 30).await;
    new_items(&store, &admin, anyone, 12).await;
    // Priorities out of id order, some items closed, some not agent-ready.
    for (n, id) in on_agents.iter().enumerate() {
        sqlx::query("UPDATE items SET priority = ?, open = ?, agent_ready = ? WHERE id = ?")
            .bind((n * 7 % 5) as i64)
            .bind(n % 4 != 1)
            .bind(n % 3 != 0)
            .bind(id)
            .execute(&store.writer)
            .await
            .expect("update");
    }
    sqlx::query("UPDATE items SET priority = 3 - id % 4 WHERE board_id = ?")
        .bind(anyone)
        .execute(&store.writer)
        .await
        .expect("update");

    let conn = open(store.path()).expect("connection");
    let mut state = State::default();
    let round = read_queue_heads(&conn, &mut state).expect("round");
    let read = round.heads.clone();

    let agents_items = items_of(&store, agents).await;
    let anyone_items = items_of(&store, anyone).await;
    let mut expected = queue_order(&agents_items, false);
    expected.extend(queue_order(&agents_items, true));
    expected.extend(queue_order(&anyone_items, false));
    assert_eq!(read, expected);
    assert!(
        !read
            .iter()
            .any(|id| agents_items.iter().any(|(i, _, open, _)| i == id && !open)),
        "a closed item was read"
    );

    // The agent queue's head is the item `claim-next` hands an agent.
    let worker = agent(new_worker(&store, "w1").await, vec![Scope::QueueWrite]);
    let filter = QueueFilter {
        board_id: Some(agents),
        ..QueueFilter::default()
    };
    let now = now_ms();
    let claimed = store
        .run(move |tx| queue::claim_next(tx, &worker, &filter, false, now))
        .await
        .expect("claim-next")
        .expect("an item");
    assert_eq!(claimed.0.item.id, queue_order(&agents_items, true)[0]);

    // Pages: every head item's at first (an item in two queues once),
    // then only what is new at the head.
    let mut once = read.clone();
    once.sort_unstable();
    once.dedup();
    let mut pages_read = round.read.clone();
    pages_read.sort_unstable();
    assert_eq!(pages_read, once);
    let again = read_queue_heads(&conn, &mut state).expect("round");
    assert_eq!(again.heads, read);
    assert!(again.read.is_empty(), "{:?} read again", again.read);
    let fresh = new_items(&store, &admin, anyone, 1).await[0];
    sqlx::query("UPDATE items SET priority = 0 WHERE id = ?")
        .bind(fresh)
        .execute(&store.writer)
        .await
        .expect("update");
    let third = read_queue_heads(&conn, &mut state).expect("round");
    assert_eq!(third.read, vec![fresh]);
    assert_eq!(third.heads.iter().filter(|&&id| id == fresh).count(), 1);
}

#[tokio::test]
async fn a_queue_is_read_as_far_ahead_as_its_pace_needs() {
    let (_dir, store) = scratch().await;
    let admin = agent(new_worker(&store, "admin").await, vec![Scope::Admin]);
    let board = new_board(&store, "Board", "BRD").await;
    agents_take_all(&store, board).await;
    new_items(&store, &admin, board, 1200).await;
    let conn = open(store.path()).expect("connection");
    let mut state = State::default();
    // Nothing known of its pace yet: the slack, twice.
    let first = read_queue_heads(&conn, &mut state).expect("round");
    assert_eq!(first.heads.len() as i64, 2 * SLACK);
    // Nothing left the head: the slack alone.
    let second = read_queue_heads(&conn, &mut state).expect("round");
    assert_eq!(second.heads.len() as i64, SLACK);
    // 50 items taken off the head: four rounds of that ahead, plus slack.
    let close = |n: i64| {
        sqlx::query(
            "UPDATE items SET open = 0 WHERE id IN \
             (SELECT id FROM items WHERE board_id = ? AND open = 1 ORDER BY priority, id LIMIT ?)",
        )
        .bind(board)
        .bind(n)
        .execute(&store.writer)
    };
    close(50).await.expect("close");
    read_queue_heads(&conn, &mut state).expect("round");
    let third = read_queue_heads(&conn, &mut state).expect("round");
    assert_eq!(third.heads.len() as i64, SLACK + LEAD_ROUNDS * 50);
    // The pace is remembered for a while and fades.
    let fourth = read_queue_heads(&conn, &mut state).expect("round");
    assert_eq!(
        fourth.heads.len() as i64,
        SLACK + LEAD_ROUNDS * (50 * 3 / 4)
    );
    // Only what entered the head was read: nothing twice.
    assert!(third.read.len() < third.heads.len());
    assert!(fourth.read.is_empty(), "{:?}", fourth.read);
}

#[tokio::test]
async fn a_queue_head_is_read_off_its_index_alone_in_order() {
    let (_dir, store) = scratch().await;
    let conn = open(store.path()).expect("connection");
    for (agents_only_ready, index) in [(false, "items_queue"), (true, "items_agent_queue")] {
        let sql = queue_head_sql(agents_only_ready);
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan")
            .query_map([1, 1], |r| r.get::<_, String>(3))
            .expect("plan rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        assert_eq!(plan.len(), 1, "{sql}: {plan:#?}");
        assert!(
            plan[0].starts_with(&format!(
                "SEARCH i USING COVERING INDEX {index} (board_id=?"
            )),
            "{sql}: {plan:#?}"
        );
    }
}

#[tokio::test]
async fn an_item_s_pages_are_read_by_index_seeks() {
    let (_dir, store) = scratch().await;
    let conn = open(store.path()).expect("connection");
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {ITEM_PAGES}"))
        .expect("plan")
        .query_map([1], |r| r.get::<_, String>(3))
        .expect("plan rows")
        .collect::<rusqlite::Result<_>>()
        .expect("plan rows");
    let searches = plan.iter().filter(|l| l.starts_with("SEARCH")).count();
    // The row, the blockers (deps and their items), events, lane, 2 notes.
    assert_eq!(searches, 7, "{plan:#?}");
    assert!(
        plan.iter().all(|l| !l.starts_with("SCAN")),
        "a scan: {plan:#?}"
    );
    assert!(
        plan.iter()
            .any(|l| l.contains("items_by_lane (lane_id=? AND rowid=?)")),
        "{plan:#?}"
    );
}

#[tokio::test]
async fn the_writer_s_commits_start_rounds_at_most_one_per_pause_and_an_idle_instance_reads_nothing()
 {
    let (_dir, store) = scratch().await;
    let admin = agent(new_worker(&store, "admin").await, vec![Scope::Admin]);
    let board = new_board(&store, "Board", "BRD").await;
    let rounds = || store.commands.stats().read_ahead_rounds;

    // Commits that wrote rows: a round follows.
    new_items(&store, &admin, board, 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while rounds() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rounds() >= 1, "no round after a commit");

    // A burst of commits over 0.5 s: rounds stay one per pause at most.
    let before = rounds();
    let burst = Instant::now();
    while burst.elapsed() < Duration::from_millis(500) {
        new_items(&store, &admin, board, 1).await;
    }
    tokio::time::sleep(EVERY * 2).await;
    let during = rounds() - before;
    let allowed = (burst.elapsed().as_millis() / EVERY.as_millis()) as u64 + 2;
    assert!(
        (1..=allowed).contains(&during),
        "{during} rounds for a burst of {:?} (at most {allowed})",
        burst.elapsed()
    );

    // Quiet: no commits, no rounds.
    let quiet = rounds();
    tokio::time::sleep(EVERY * 4).await;
    assert_eq!(rounds(), quiet, "rounds without commits");

    // Commands that write nothing do not wake it either.
    for _ in 0..20 {
        store.run(|_tx| Ok(())).await.expect("no-op");
    }
    tokio::time::sleep(EVERY * 3).await;
    assert_eq!(rounds(), quiet, "rounds after commands that wrote nothing");
}
