//! The writer under concurrency: group commit, failing commands (replays), and
//! random command sequences through the real queue commands on a real
//! SQLite file.

use super::*;
use crate::domain::board::{LaneRole, NewBoard};
use crate::domain::item::{NewItem, NewItemInput};
use crate::domain::{DomainError, Principal, Scope, WorkerKind};
use crate::store::queue::{self, ClaimOutcome, MoveTarget, QueueFilter};
use crate::store::{Durability, Store, now_ms};
use futures_util::future::join_all;
use proptest::prelude::*;
use std::collections::HashMap;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    board: i64,
    items: Vec<i64>,
    workers: Vec<Principal>,
    claim_limit: i64,
    wip_lane: i64,
    wip_limit: i64,
}

fn principal(worker_id: i64, scopes: Vec<Scope>) -> Principal {
    Principal {
        token_id: 0,
        worker_id,
        worker_name: format!("w{worker_id}"),
        worker_kind: WorkerKind::Agent,
        scopes,
        board_id: None,
    }
}

async fn fixture(item_count: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Durability::Normal, 2)
        .await
        .expect("open store");
    let now = now_ms();
    let new_board = NewBoard::parse("Test", "TST").expect("board");
    let board = store
        .run(move |tx| super::super::boards::create(tx, None, &new_board, now))
        .await
        .expect("create board");
    let (claim_limit, wip_limit) = (2_i64, 2_i64);
    sqlx::query("UPDATE boards SET claim_limit = ? WHERE id = ?")
        .bind(claim_limit)
        .bind(board.id)
        .execute(&store.writer)
        .await
        .expect("limit");
    let wip_lane: i64 = sqlx::query_scalar(
        "UPDATE lanes SET wip_limit = ? WHERE board_id = ? AND role = 'in_progress' RETURNING id",
    )
    .bind(wip_limit)
    .bind(board.id)
    .fetch_one(&store.writer)
    .await
    .expect("wip");
    let mut workers = Vec::new();
    for n in 0..4 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO workers (name, kind, created_at) VALUES (?, 'agent', ?) RETURNING id",
        )
        .bind(format!("w{n}"))
        .bind(now)
        .fetch_one(&store.writer)
        .await
        .expect("worker");
        workers.push(principal(id, vec![Scope::QueueWrite]));
    }
    let admin = principal(workers[0].worker_id, vec![Scope::Admin]);
    let mut item_ids = Vec::new();
    for n in 0..item_count {
        let title = format!("item {n}");
        let new = NewItem::parse(NewItemInput {
            title: &title,
            body: None,
            kind: None,
            parent_id: None,
            priority: None,
            labels: None,
            agent_ready: Some(true),
            blocked_by: None,
            lane_id: None,
        })
        .expect("item");
        let (admin, board_id) = (admin.clone(), board.id);
        let item = store
            .run(move |tx| crate::store::items::create(tx, &admin, board_id, &new, now))
            .await
            .expect("create item");
        item_ids.push(item.id);
    }
    Fixture {
        _dir: dir,
        store,
        board: board.id,
        items: item_ids,
        workers,
        claim_limit,
        wip_lane,
        wip_limit,
    }
}

/// A test command, boxed so several can be queued together.
type Boxed<T> = Box<dyn Fn(&Tx<'_>) -> CommandResult<T> + Send + Sync>;

/// Holds the writer thread for 200 ms, then runs `queued` together: they
/// form one group of their own.
async fn one_group<T: Send + 'static>(
    w: &super::Writer,
    queued: Vec<Boxed<T>>,
) -> Vec<CommandResult<T>> {
    let slow = w.run(|_tx| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(())
    });
    let rest = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        join_all(
            queued
                .into_iter()
                .map(|command| w.run(move |tx: &Tx<'_>| command(tx))),
        )
        .await
    };
    let (slow, results) = tokio::join!(slow, rest);
    slow.expect("the slow command");
    results
}

fn insert_worker(tx: &Tx<'_>, name: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO workers (name, kind, created_at) VALUES (?, 'agent', 0)",
        [name],
    )
}

async fn names(f: &Fixture) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM workers WHERE created_at = 0 ORDER BY id")
        .fetch_all(&f.store.reader)
        .await
        .expect("names")
}

#[tokio::test]
async fn queued_commands_share_one_commit_and_a_failing_one_rolls_back_alone() {
    let f = fixture(0).await;
    let w = &f.store.commands;
    // Each command inserts a worker, then reports how many test workers it
    // sees: the failing one's row must be invisible to those after it.
    let insert = |name: &'static str, fail: bool| -> Boxed<i64> {
        Box::new(move |tx: &Tx<'_>| {
            insert_worker(tx, name)?;
            if fail {
                return Err(DomainError::validation("x", "refused").into());
            }
            Ok(tx.query_row(
                "SELECT COUNT(*) FROM workers WHERE created_at = 0",
                [],
                |r| r.get(0),
            )?)
        })
    };
    let before = w.stats();
    let results = one_group(
        w,
        vec![
            insert("kept-a", false),
            insert("refused", true),
            insert("kept-c", false),
        ],
    )
    .await;
    let after = w.stats();
    assert_eq!(after.commands - before.commands, 4);
    assert_eq!(
        after.groups - before.groups,
        2,
        "the three queued commands committed together"
    );
    assert_eq!(
        after.replays - before.replays,
        1,
        "the failure after a write replayed the group once"
    );
    let mut results = results.into_iter();
    assert_eq!(results.next().map(Result::ok), Some(Some(1)));
    assert!(matches!(results.next(), Some(Err(CommandError::Rule(_)))));
    assert_eq!(
        results.next().map(Result::ok),
        Some(Some(2)),
        "the command after the failed one never saw its row"
    );
    assert_eq!(names(&f).await, ["kept-a", "kept-c"]);
}

#[tokio::test]
async fn a_command_failing_before_it_writes_costs_its_group_no_replay() {
    let f = fixture(0).await;
    let w = &f.store.commands;
    let command = |name: &'static str, fail: bool| -> Boxed<()> {
        Box::new(move |tx: &Tx<'_>| {
            if fail {
                return Err(DomainError::validation("x", "refused before writing").into());
            }
            insert_worker(tx, name)?;
            Ok(())
        })
    };
    let before = w.stats();
    let results = one_group(
        w,
        vec![
            command("a", false),
            command("refused", true),
            command("c", false),
        ],
    )
    .await;
    let after = w.stats();
    assert_eq!(after.groups - before.groups, 2);
    assert_eq!(
        after.replays - before.replays,
        0,
        "nothing to undo, nothing replayed"
    );
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(results[1], Err(CommandError::Rule(_))));
    assert_eq!(names(&f).await, ["a", "c"]);
}

#[tokio::test]
async fn a_panicking_command_is_rolled_back_and_its_group_still_commits() {
    let f = fixture(0).await;
    let w = &f.store.commands;
    let panics: Boxed<()> = Box::new(|tx: &Tx<'_>| {
        insert_worker(tx, "ghost")?;
        panic!("a bug in a command");
    });
    let kept: Boxed<()> = Box::new(|tx: &Tx<'_>| {
        insert_worker(tx, "kept")?;
        Ok(())
    });
    let before = w.stats();
    let mut results = one_group(w, vec![panics, kept]).await.into_iter();
    assert!(matches!(
        results.next(),
        Some(Err(CommandError::Writer(WriterError::Abandoned)))
    ));
    assert!(matches!(results.next(), Some(Ok(()))));
    assert_eq!(
        w.stats().replays - before.replays,
        1,
        "the panic spoiled the group, which ran again without it"
    );
    assert_eq!(names(&f).await, ["kept"]);
}

#[tokio::test]
async fn a_lone_command_that_fails_after_writing_is_rolled_back() {
    let f = fixture(0).await;
    let w = &f.store.commands;
    let insert = |name: &'static str| move |tx: &Tx<'_>| insert_worker(tx, name);
    let before = w.stats();
    // Awaited one by one: each command is a group of its own.
    let failed = w
        .run(move |tx| -> CommandResult<()> {
            insert("failed")(tx)?;
            Err(DomainError::validation("x", "fails after writing").into())
        })
        .await;
    assert!(matches!(failed, Err(CommandError::Rule(_))));
    let panicked = w
        .run(move |tx| -> CommandResult<()> {
            insert("panicked")(tx)?;
            panic!("a bug in a command");
        })
        .await;
    assert!(matches!(
        panicked,
        Err(CommandError::Writer(WriterError::Abandoned))
    ));
    w.run(move |tx| -> CommandResult<()> {
        insert("kept")(tx)?;
        Ok(())
    })
    .await
    .expect("the writer carries on");
    let after = w.stats();
    assert_eq!(after.groups - before.groups, 3, "three groups of one");
    assert_eq!(after.commands - before.commands, 3);
    assert_eq!(names(&f).await, ["kept"]);
}

#[derive(Debug, Clone)]
enum Op {
    ClaimNext {
        worker: usize,
        start: bool,
    },
    Claim {
        worker: usize,
        item: usize,
        start: bool,
    },
    Release {
        worker: usize,
        item: usize,
    },
    Move {
        worker: usize,
        item: usize,
        to: LaneRole,
    },
    Heartbeat {
        worker: usize,
        item: usize,
    },
    /// Claims, then fails: its writes must vanish (its group is replayed without it).
    Poisoned {
        worker: usize,
        item: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let worker = 0..4_usize;
    let item = 0..6_usize;
    let role = prop_oneof![
        Just(LaneRole::Ready),
        Just(LaneRole::InProgress),
        Just(LaneRole::Review),
        Just(LaneRole::Blocked),
        Just(LaneRole::Done),
    ];
    prop_oneof![
        (worker.clone(), any::<bool>()).prop_map(|(worker, start)| Op::ClaimNext { worker, start }),
        (worker.clone(), item.clone(), any::<bool>()).prop_map(|(worker, item, start)| Op::Claim {
            worker,
            item,
            start
        }),
        (worker.clone(), item.clone()).prop_map(|(worker, item)| Op::Release { worker, item }),
        (worker.clone(), item.clone(), role).prop_map(|(worker, item, to)| Op::Move {
            worker,
            item,
            to
        }),
        (worker.clone(), item.clone()).prop_map(|(worker, item)| Op::Heartbeat { worker, item }),
        (worker, item).prop_map(|(worker, item)| Op::Poisoned { worker, item }),
    ]
}

/// Runs one op; returns how many new claims its (acknowledged) answer made.
async fn run_op(f: &Fixture, op: Op) -> usize {
    let now = now_ms();
    let claims_made = |r: &CommandResult<(queue::ClaimedItem, ClaimOutcome)>| {
        usize::from(matches!(r, Ok((_, ClaimOutcome::New))))
    };
    match op {
        Op::ClaimNext { worker, start } => {
            let caller = f.workers[worker].clone();
            let filter = QueueFilter {
                board_id: Some(f.board),
                ..QueueFilter::default()
            };
            let r = f
                .store
                .run(move |tx| queue::claim_next(tx, &caller, &filter, start, now))
                .await;
            usize::from(matches!(r, Ok(Some((_, ClaimOutcome::New)))))
        }
        Op::Claim {
            worker,
            item,
            start,
        } => {
            let (caller, id) = (f.workers[worker].clone(), f.items[item]);
            let r = f
                .store
                .run(move |tx| queue::claim(tx, &caller, id, start, None, now))
                .await;
            claims_made(&r)
        }
        Op::Release { worker, item } => {
            let (caller, id) = (f.workers[worker].clone(), f.items[item]);
            let _ = f
                .store
                .run(move |tx| queue::release(tx, &caller, id, None, None, now))
                .await;
            0
        }
        Op::Move { worker, item, to } => {
            let (caller, id) = (f.workers[worker].clone(), f.items[item]);
            let r = f
                .store
                .run(move |tx| {
                    let before =
                        crate::store::tx::load_row(tx, id)?.and_then(|r| r.claim_worker_id);
                    let item =
                        queue::move_item(tx, &caller, id, MoveTarget::Status(to), None, None, now)?;
                    // A move into in_progress by a non-holder claims it.
                    Ok(usize::from(
                        before.is_none()
                            && item.claim.is_some_and(|c| c.worker.id == caller.worker_id),
                    ))
                })
                .await;
            r.unwrap_or(0)
        }
        Op::Heartbeat { worker, item } => {
            let (caller, id) = (f.workers[worker].clone(), f.items[item]);
            let _ = f
                .store
                .run(move |tx| queue::heartbeat(tx, &caller, id, None, now))
                .await;
            0
        }
        Op::Poisoned { worker, item } => {
            let (caller, id) = (f.workers[worker].clone(), f.items[item]);
            let r: CommandResult<()> = f
                .store
                .run(move |tx| {
                    let _ = queue::claim(tx, &caller, id, true, None, now);
                    tx.execute(
                        "INSERT INTO events (board_id, item_id, type, actor_id, at, data) \
                         SELECT board_id, id, 'item.updated', NULL, 0, '{\"poison\":true}' FROM items WHERE id = ?",
                        [id],
                    )?;
                    Err(DomainError::validation("poison", "this command always fails").into())
                })
                .await;
            assert!(r.is_err());
            0
        }
    }
}

/// Replays the history in commit order and checks the queue's invariants
/// at every step; returns the number of `item.claimed` events.
async fn check_history(f: &Fixture) -> usize {
    let events: Vec<(String, i64, Option<i64>, String)> = sqlx::query_as(
        "SELECT type, item_id, actor_id, data FROM events WHERE board_id = ? ORDER BY id",
    )
    .bind(f.board)
    .fetch_all(&f.store.reader)
    .await
    .expect("events");
    let mut holder: HashMap<i64, i64> = HashMap::new();
    let mut lane_of: HashMap<i64, i64> = HashMap::new();
    let mut claimed = 0;
    for (kind, item, actor, data) in events {
        let data: serde_json::Value = serde_json::from_str(&data).expect("json");
        assert!(
            data.get("poison").is_none(),
            "a failed command's write survived"
        );
        match kind.as_str() {
            "item.created" => {
                lane_of.insert(item, data["lane_id"].as_i64().expect("lane"));
            }
            "item.claimed" => {
                claimed += 1;
                let worker = actor.expect("claimer");
                assert!(
                    holder.insert(item, worker).is_none(),
                    "item {item} claimed while held"
                );
                let held = holder.values().filter(|w| **w == worker).count() as i64;
                assert!(held <= f.claim_limit, "worker {worker} holds {held}");
            }
            "item.released" => {
                assert!(holder.remove(&item).is_some(), "released an unheld item");
                lane_of.insert(item, data["lane_id"].as_i64().expect("lane"));
            }
            "item.claim-expired" => {
                holder.remove(&item);
            }
            "item.moved" => {
                if data["claim_ended"] == serde_json::json!(true) {
                    holder.remove(&item);
                }
                lane_of.insert(item, data["to_lane_id"].as_i64().expect("lane"));
            }
            _ => {}
        }
        let wip = lane_of.values().filter(|l| **l == f.wip_lane).count() as i64;
        assert!(wip <= f.wip_limit, "in-progress lane holds {wip}");
    }
    // The replay agrees with the final rows.
    let rows: Vec<(i64, Option<i64>, i64)> =
        sqlx::query_as("SELECT id, claim_worker_id, lane_id FROM items WHERE board_id = ?")
            .bind(f.board)
            .fetch_all(&f.store.reader)
            .await
            .expect("items");
    for (id, worker, lane) in rows {
        assert_eq!(holder.get(&id).copied(), worker, "holder of {id}");
        assert_eq!(lane_of.get(&id).copied(), Some(lane), "lane of {id}");
    }
    claimed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random interleavings through the batching writer never give an item
    /// two holders, a worker more than its limit or a lane more than its
    /// WIP; failing commands leave nothing behind and every acknowledged
    /// claim is in the history.
    #[test]
    fn random_command_sequences_keep_the_queue_invariants(ops in proptest::collection::vec(op(), 1..48)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let f = fixture(6).await;
            let acknowledged: usize = join_all(ops.into_iter().map(|op| run_op(&f, op)))
                .await
                .into_iter()
                .sum();
            let claimed = check_history(&f).await;
            assert_eq!(claimed, acknowledged, "acknowledged claims == committed claims");
            f.store.close().await;
        });
    }
}

/// One generated item: lane role, agent-ready, claim (none, live, lapsed),
/// and which earlier items block it.
#[derive(Debug, Clone)]
struct GenItem {
    role: LaneRole,
    agent_ready: bool,
    claim: Option<bool>,
    blockers: Vec<usize>,
}

fn gen_item() -> impl Strategy<Value = GenItem> {
    (
        proptest::sample::select(LaneRole::ALL.to_vec()),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(0..12_usize, 0..3),
    )
        .prop_map(|(role, agent_ready, claim, blockers)| GenItem {
            role,
            agent_ready,
            claim,
            blockers,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The claim-next SQL and `domain::queue::claimable` pick the same items.
    #[test]
    fn the_sql_and_rust_claimability_predicates_agree(
        generated in proptest::collection::vec(gen_item(), 1..12),
        agent in any::<bool>(),
        agents_need_ready in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let f = fixture(0).await;
            let (board, worker) = (f.board, f.workers[1].worker_id);
            let disagreements = f
                .store
                .run(move |tx| {
                    tx.execute(
                        "UPDATE boards SET agents_need_ready = ? WHERE id = ?",
                        rusqlite::params![agents_need_ready, board],
                    )?;
                    let now = now_ms();
                    let mut ids = Vec::new();
                    for (n, item) in generated.iter().enumerate() {
                        let lane: i64 = tx.query_row(
                            "SELECT id FROM lanes WHERE board_id = ? AND role = ? ORDER BY position LIMIT 1",
                            rusqlite::params![board, item.role.as_str()],
                            |r| r.get(0),
                        )?;
                        let (holder, until) = match item.claim {
                            None => (None, None),
                            Some(live) => (Some(worker), Some(if live { now + 60_000 } else { now - 1 })),
                        };
                        let id: i64 = tx.query_row(
                            "INSERT INTO items (board_id, number, lane_id, status, open, kind, title, body, priority, labels, \
                             agent_ready, created_by, created_at, updated_at, claim_worker_id, claimed_at, lease_expires_at, \
                             claim_seq, claim_token) VALUES (?, ?, ?, ?, ?, 'task', 't', '', 2, '[]', ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
                            rusqlite::params![
                                board, n as i64 + 1, lane, item.role.as_str(), item.role.is_open(), item.agent_ready,
                                worker, now, now, holder, holder.map(|_| now - 10), until, holder.map(|_| 1_i64)
                            ],
                            |r| r.get(0),
                        )?;
                        ids.push(id);
                    }
                    for (n, item) in generated.iter().enumerate() {
                        for &b in &item.blockers {
                            if b < n {
                                tx.execute(
                                    "INSERT OR IGNORE INTO item_deps (item_id, blocked_by_id) VALUES (?, ?)",
                                    [ids[n], ids[b]],
                                )?;
                            }
                        }
                    }
                    let board_row = crate::store::tx::load_board(tx, board)?.expect("board");
                    let kind = if agent { WorkerKind::Agent } else { WorkerKind::Human };
                    let sql = queue::candidate_sql(
                        kind == WorkerKind::Agent && board_row.agents_need_ready,
                        &QueueFilter::default(),
                    );
                    let mut from_sql: Vec<i64> = tx
                        .prepare(&sql)?
                        .query_map(rusqlite::params![board, now, 1000_i64], |r| r.get(1))?
                        .collect::<rusqlite::Result<_>>()?;
                    from_sql.sort_unstable();
                    let mut from_rust = Vec::new();
                    for &id in &ids {
                        let row = crate::store::tx::load_row(tx, id)?.expect("row");
                        if crate::domain::queue::claimable(&board_row.rules(), kind, &row.state()?, now) {
                            from_rust.push(id);
                        }
                    }
                    Ok((from_sql, from_rust))
                })
                .await
                .expect("run");
            assert_eq!(disagreements.0, disagreements.1, "SQL vs Rust claimable sets");
            f.store.close().await;
        });
    }
}

/// A group handed to the WAL sync thread: answered with the command's own
/// result after a good fsync, with an error after a failed one, and the
/// change signal ticks only for a group that is durable. (That no answer
/// precedes its fsync is the crash test's business: `tests/api/crash.rs`
/// runs at FULL.)
#[tokio::test]
async fn the_wal_sync_answers_after_a_good_fsync_and_fails_the_group_on_a_bad_one() {
    use super::super::wal_sync::{Batch, WalSync};
    async fn hand_over(db_path: &std::path::Path) -> (CommandResult<i64>, u64) {
        let (changes, mut seen) = tokio::sync::watch::channel(0_u64);
        let (outbox, _) = tokio::sync::watch::channel(0_u64);
        let signals = Signals {
            changes: Arc::new(changes),
            outbox: Arc::new(outbox),
        };
        let sync = WalSync::start(db_path, signals.clone()).expect("sync thread");
        let (reply, answer) = oneshot::channel::<CommandResult<i64>>();
        let job: Job = Box::new(Pending {
            command: |_tx: &Tx<'_>| -> CommandResult<i64> { Ok(7) },
            result: Some(Ok(7)),
            reply,
        });
        sync.hand_over(Batch {
            jobs: vec![job],
            commit: Ok(()),
            wrote: true,
            changed: true,
            outbox: false,
        });
        let answered = answer.await.expect("answered");
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), seen.changed()).await;
        (answered, *seen.borrow())
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("t.db");
    std::fs::write(dir.path().join("t.db-wal"), b"frames").expect("wal");
    let (answered, ticks) = hand_over(&db).await;
    assert_eq!(answered.ok(), Some(7));
    assert_eq!(ticks, 1, "a durable group ticks the change signal");
    // The WAL "file" sits under a regular file: opening it fails (not
    // "no such file"), so the fsync cannot be done.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").expect("file");
    let (answered, ticks) = hand_over(&blocker.join("t.db")).await;
    assert!(
        matches!(answered, Err(CommandError::Writer(WriterError::Commit(_)))),
        "{answered:?}"
    );
    assert_eq!(ticks, 0, "nothing durable, nothing announced");
}
