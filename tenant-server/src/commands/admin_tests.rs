//! The board, lane, token and webhook commands on the real writer and a
//! real SQLite file: grouped with a failing one, and the webhook sender's
//! bookkeeping (take, record, disable, prune).

use crate::commands::{boards, tokens, webhooks};
use crate::domain::board::{BoardPatch, LaneRole, NewBoard, NewLane};
use crate::domain::item::{NewItem, NewItemInput};
use crate::domain::webhook::{AttemptOutcome, AttemptResult, GIVE_UP_AFTER_MS};
use crate::domain::{DomainError, Principal, Scope, WorkerKind};
use crate::store::model::{Board, Timestamp};
use crate::store::tokens::NewToken;
use crate::store::webhooks::Attempt;
use crate::store::{CommandError, Durability, Store, now_ms};
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    admin: Principal,
    board: Board,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Durability::Normal, 2)
        .await
        .expect("open store");
    let now = now_ms();
    let board = boards::create(
        &store,
        None,
        &NewBoard::parse("Core", "CORE").expect("board"),
        now,
    )
    .await
    .expect("create board");
    let token = NewToken::parse(
        "root",
        "root",
        WorkerKind::Human,
        vec![Scope::Admin],
        None,
        None,
        now,
    )
    .expect("token");
    let (info, _) = tokens::create(&store, &token, now).await.expect("mint");
    let admin = Principal {
        token_id: info.id,
        worker_id: info.worker.id,
        worker_name: info.worker.name,
        worker_kind: info.worker.kind,
        scopes: vec![Scope::Admin],
        board_id: None,
    };
    Fixture {
        _dir: dir,
        store,
        admin,
        board,
    }
}

fn lane(name: &str) -> NewLane {
    NewLane::parse(name, LaneRole::Review, None, Some(4), None).expect("lane")
}

#[tokio::test]
async fn admin_commands_share_a_group_and_a_failing_one_rolls_back_alone() {
    let f = fixture().await;
    let (store, admin, board) = (&f.store, &f.admin, f.board.id);
    let now = now_ms();
    // One command holds the writer while the others queue: they form one group.
    let slow = store.run(|_tx| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    let bot = NewToken::parse(
        "bot",
        "bot",
        WorkerKind::Agent,
        vec![Scope::QueueWrite],
        Some(board),
        None,
        now,
    )
    .expect("token");
    let rename = BoardPatch {
        name: Some("Core team".into()),
        ..BoardPatch::default()
    };
    let (qa_lane, dup_lane) = (lane("QA"), lane("ready"));
    let rest = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::join!(
            boards::create_lane(store, admin, board, &qa_lane),
            // "ready" is a default lane's name, whatever its case: refused.
            boards::create_lane(store, admin, board, &dup_lane),
            tokens::create_by(store, admin, &bot, now),
            webhooks::create(store, admin, board, "https://hooks.example/x", &[], now),
            boards::update(store, admin, board, &rename, now),
        )
    };
    let before = store.commands.stats();
    let (slow, (qa, dup, minted, hook, renamed)) = tokio::join!(slow, rest);
    let after = store.commands.stats();
    assert!(slow.is_ok());
    assert_eq!(after.commands - before.commands, 6);
    assert_eq!(
        after.groups - before.groups,
        2,
        "the five queued commands ran as one group"
    );
    assert!(
        matches!(dup, Err(CommandError::Rule(DomainError::Validation(_)))),
        "{dup:?}"
    );
    let qa = qa.expect("QA lane");
    let (token, secret) = minted.expect("token");
    let (hook, _) = hook.expect("webhook");
    assert_eq!(renamed.expect("renamed").name, "Core team");

    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM lanes WHERE board_id = ? ORDER BY position")
            .bind(board)
            .fetch_all(&store.reader)
            .await
            .expect("lanes");
    assert_eq!(
        names,
        [
            "Backlog",
            "Ready",
            "In Progress",
            "Review",
            "Blocked",
            "Done",
            "QA"
        ],
        "the refused lane left nothing; the others committed"
    );
    assert_eq!(qa.position, 6);
    let stored_token: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE id = ?")
        .bind(token.id)
        .fetch_one(&store.reader)
        .await
        .expect("token row");
    assert_eq!(stored_token, 1);
    assert!(crate::store::tokens::is_well_formed(&secret));
    let hooks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE id = ?")
        .bind(hook.id)
        .fetch_one(&store.reader)
        .await
        .expect("webhook row");
    assert_eq!(hooks, 1);
}

#[tokio::test]
async fn lanes_are_placed_renumbered_and_removed_only_when_empty() {
    let f = fixture().await;
    let (store, admin, board) = (&f.store, &f.admin, f.board.id);
    let first = NewLane::parse("Triage", LaneRole::Backlog, Some(0), None, None).expect("lane");
    let triage = boards::create_lane(store, admin, board, &first)
        .await
        .expect("triage");
    assert_eq!(triage.position, 0);
    let done_lane: i64 =
        sqlx::query_scalar("SELECT id FROM lanes WHERE board_id = ? AND role = 'done'")
            .bind(board)
            .fetch_one(&store.reader)
            .await
            .expect("done lane");
    let item = NewItem::parse(NewItemInput {
        title: "filed",
        body: None,
        kind: None,
        parent_id: None,
        priority: None,
        labels: None,
        agent_ready: None,
        blocked_by: None,
        lane_id: Some(triage.id),
    })
    .expect("item");
    crate::commands::items::create(store, admin, board, &item, now_ms())
        .await
        .expect("item");
    let refused = boards::delete_lane(store, admin, triage.id).await;
    assert!(
        matches!(refused, Err(CommandError::Rule(DomainError::Validation(_)))),
        "{refused:?}"
    );
    boards::delete_lane(store, admin, done_lane)
        .await
        .expect("an empty lane goes");
    let positions: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM lanes WHERE board_id = ? ORDER BY position")
            .bind(board)
            .fetch_all(&store.reader)
            .await
            .expect("positions");
    assert_eq!(positions, [0, 1, 2, 3, 4, 5], "positions stay dense");
}

async fn one_delivery(f: &Fixture) -> i64 {
    let now = now_ms();
    webhooks::create(
        &f.store,
        &f.admin,
        f.board.id,
        "https://hooks.example/y",
        &[],
        now,
    )
    .await
    .expect("webhook");
    let item = NewItem::parse(NewItemInput {
        title: "announce me",
        body: None,
        kind: None,
        parent_id: None,
        priority: None,
        labels: None,
        agent_ready: None,
        blocked_by: None,
        lane_id: None,
    })
    .expect("item");
    crate::commands::items::create(&f.store, &f.admin, f.board.id, &item, now)
        .await
        .expect("item");
    sqlx::query_scalar("SELECT id FROM webhook_deliveries ORDER BY id LIMIT 1")
        .fetch_one(&f.store.reader)
        .await
        .expect("an outbox row")
}

fn attempt(at: i64) -> Attempt {
    Attempt {
        at: Timestamp(at),
        status_code: Some(500),
        latency_ms: 3,
        error: None,
        response: Some("down".into()),
    }
}

#[tokio::test]
async fn a_taken_delivery_is_not_taken_twice_and_failures_back_off_then_disable() {
    let f = fixture().await;
    let store = &f.store;
    let delivery = one_delivery(&f).await;
    let now = now_ms();
    let taken = webhooks::take_due(store, now, 10, 60_000)
        .await
        .expect("take");
    assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), [delivery]);
    assert!(
        webhooks::take_due(store, now, 10, 60_000)
            .await
            .expect("take again")
            .is_empty(),
        "leased while its attempt runs"
    );
    let failed = AttemptResult::Failed { retry_after: None };
    let outcome = webhooks::record_attempt(store, delivery, &attempt(now), failed, 1.0, 0.0)
        .await
        .expect("record");
    assert_eq!(outcome, Some(AttemptOutcome::RetryAt(now + 5_000)));
    // The endpoint has been failing for more than three days: the next
    // failure disables it, on the board's feed.
    sqlx::query("UPDATE webhooks SET failing_since = ?")
        .bind(now - GIVE_UP_AFTER_MS - 1)
        .execute(&store.writer)
        .await
        .expect("age the failure run");
    let outcome = webhooks::record_attempt(store, delivery, &attempt(now), failed, 1.0, 0.0)
        .await
        .expect("record");
    assert!(
        matches!(outcome, Some(AttemptOutcome::DisableEndpoint(_))),
        "{outcome:?}"
    );
    let (enabled, notices): (bool, i64) = sqlx::query_as(
        "SELECT (SELECT enabled FROM webhooks), (SELECT COUNT(*) FROM events WHERE type = 'webhook.disabled')",
    )
    .fetch_one(&store.reader)
    .await
    .expect("state");
    assert!(!enabled);
    assert_eq!(notices, 1);
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts")
        .fetch_one(&store.reader)
        .await
        .expect("attempts");
    assert_eq!(attempts, 2);
    // Finished and past retention: pruned with its attempts; newer ones stay.
    let created: i64 = sqlx::query_scalar("SELECT created_at FROM webhook_deliveries")
        .fetch_one(&store.reader)
        .await
        .expect("created");
    assert_eq!(
        webhooks::prune_outbox(store, created, 100)
            .await
            .expect("prune"),
        0,
        "nothing is older than its retention yet"
    );
    assert_eq!(
        webhooks::prune_outbox(store, created + 1, 100)
            .await
            .expect("prune"),
        1
    );
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM webhook_deliveries), (SELECT COUNT(*) FROM webhook_attempts)",
    )
    .fetch_one(&store.reader)
    .await
    .expect("left");
    assert_eq!(left, (0, 0));
}

#[tokio::test]
async fn revocation_commits_then_the_auth_cache_forgets_the_token() {
    let f = fixture().await;
    let store = &f.store;
    let now = now_ms();
    let bot = NewToken::parse(
        "bot",
        "bot",
        WorkerKind::Agent,
        vec![Scope::QueueWrite],
        None,
        None,
        now,
    )
    .expect("token");
    let (info, secret) = tokens::create(store, &bot, now).await.expect("mint");
    let hash = crate::store::tokens::hash_secret(&secret);
    let generation = store.auth.generation();
    let found = crate::store::tokens::lookup(&store.reader, &hash, now)
        .await
        .expect("lookup")
        .expect("working");
    store.auth.fill(hash, generation, found, now);
    assert!(store.auth.get(&hash, now).is_some(), "cached");
    let revoked = tokens::revoke(store, &f.admin, info.id, now)
        .await
        .expect("revoke");
    assert!(revoked.revoked_at.is_some());
    assert!(
        store.auth.get(&hash, now).is_none(),
        "forgotten as the revocation is answered"
    );
    assert!(
        crate::store::tokens::lookup(&store.reader, &hash, now)
            .await
            .expect("lookup")
            .is_none(),
        "and the database says revoked"
    );
}

/// Waits (briefly) for the change counter to tick after a command.
async fn ticked(changes: &mut tokio::sync::watch::Receiver<u64>) -> bool {
    tokio::time::timeout(Duration::from_secs(2), changes.changed())
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test]
async fn edits_that_can_make_work_claimable_or_due_wake_listeners_from_their_commit() {
    let f = fixture().await;
    let (store, admin, board) = (&f.store, &f.admin, f.board.id);
    let mut changes = store.changes.subscribe();
    changes.mark_unchanged();
    let mut outbox = store.outbox.subscribe();
    outbox.mark_unchanged();
    let unlock = BoardPatch {
        locked: Some(false),
        ..BoardPatch::default()
    };
    boards::update(store, admin, board, &unlock, now_ms())
        .await
        .expect("patch board");
    assert!(ticked(&mut changes).await, "a board patch wakes long-polls");
    let review: i64 =
        sqlx::query_scalar("SELECT id FROM lanes WHERE board_id = ? AND role = 'review'")
            .bind(board)
            .fetch_one(&store.reader)
            .await
            .expect("review lane");
    let to_ready = crate::domain::board::LanePatch {
        role: Some(LaneRole::Ready),
        ..Default::default()
    };
    boards::update_lane(store, admin, review, &to_ready)
        .await
        .expect("patch lane");
    assert!(ticked(&mut changes).await, "a lane edit wakes long-polls");
    assert!(
        !outbox.has_changed().expect("sender alive"),
        "commits that gave the webhook sender no work do not wake it"
    );
    let delivery = one_delivery(&f).await;
    assert!(
        ticked(&mut outbox).await,
        "the item's event wrote outbox rows: the sender is woken (seen now, so only the retry can tick next)"
    );
    let hook: i64 = sqlx::query_scalar("SELECT webhook_id FROM webhook_deliveries WHERE id = ?")
        .bind(delivery)
        .fetch_one(&store.reader)
        .await
        .expect("hook");
    webhooks::retry(store, admin, hook, delivery, now_ms())
        .await
        .expect("retry");
    assert!(ticked(&mut outbox).await, "a retry wakes the sender");
}
