//! The session and user commands against a real SQLite file through the
//! writer: setup happens once however many race it, sign-in and
//! sign-out, the idle-timer renewal written once per session, batched,
//! and idempotency records kept for their window.

use super::sessions;
use crate::domain::DomainError;
use crate::domain::users::{NewUser, TOUCH_EVERY_MS};
use crate::store::{CommandError, Durability, Store, now_ms};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), Durability::Normal, 2)
        .await
        .expect("open store");
    (dir, store)
}

fn admin_user(name: &str) -> NewUser {
    NewUser::parse(name, "a long enough password", "admin", None).expect("valid user")
}

async fn last_seen(store: &Store) -> Vec<i64> {
    sqlx::query_scalar("SELECT last_seen_at FROM sessions ORDER BY last_seen_at")
        .fetch_all(&store.reader)
        .await
        .expect("sessions")
}

#[tokio::test]
async fn of_racing_setups_exactly_one_creates_the_first_user() {
    let (_dir, store) = open().await;
    let hash = sessions::hash_password("a long enough password").expect("hash");
    let now = now_ms();
    let racers = (0..8).map(|n| {
        let (store, hash) = (store.clone(), hash.clone());
        async move {
            sessions::set_up_first_user(&store, &admin_user(&format!("admin{n}")), hash, now).await
        }
    });
    let results = futures_util::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, CommandError::Rule(DomainError::Forbidden(_))),
            "{refused:?}"
        );
    }
    assert_eq!(
        crate::store::users::count(&store.reader)
            .await
            .expect("count"),
        1
    );
    assert_eq!(last_seen(&store).await.len(), 1, "the winner is signed in");
}

#[tokio::test]
async fn sign_in_checks_the_password_and_sign_out_ends_the_session() {
    let (_dir, store) = open().await;
    let hash = sessions::hash_password("a long enough password").expect("hash");
    let now = now_ms();
    sessions::set_up_first_user(&store, &admin_user("ada"), hash, now)
        .await
        .expect("setup");
    assert!(
        sessions::login(&store, "ada", "the wrong password", now)
            .await
            .expect("login")
            .is_none()
    );
    assert!(
        sessions::login(&store, "bob", "a long enough password", now)
            .await
            .expect("login")
            .is_none()
    );
    let started = sessions::login(&store, "ada", "a long enough password", now)
        .await
        .expect("login")
        .expect("signed in");
    let session = sessions::authenticate(&store, &started.id, now)
        .await
        .expect("authenticate")
        .expect("live");
    assert_eq!(session.user.username, "ada");
    assert!(sessions::check_csrf(&session, &started.csrf).is_ok());
    assert!(sessions::check_csrf(&session, "forged").is_err());
    sessions::end(&store, &started.id).await.expect("sign out");
    assert!(
        sessions::authenticate(&store, &started.id, now)
            .await
            .expect("authenticate")
            .is_none()
    );
}

#[tokio::test]
async fn the_idle_timer_is_written_once_a_minute_per_session_in_one_batch() {
    let (_dir, store) = open().await;
    let hash = sessions::hash_password("a long enough password").expect("hash");
    let t0 = now_ms();
    let first = sessions::set_up_first_user(&store, &admin_user("ada"), hash, t0)
        .await
        .expect("setup");
    let second = sessions::start(&store, 1, t0)
        .await
        .expect("second session");
    // Within the minute: reads only, nothing noted.
    for id in [&first.id, &second.id] {
        sessions::authenticate(&store, id, t0 + 1_000)
            .await
            .expect("authenticate")
            .expect("live");
    }
    assert_eq!(store.auth.sessions_seen.take_pending().len(), 0);
    // Past it: many requests of both sessions, one renewal each, one write.
    let later = t0 + TOUCH_EVERY_MS + 1;
    let before = store.commands.stats();
    for n in 0..20 {
        for id in [&first.id, &second.id] {
            sessions::authenticate(&store, id, later + n)
                .await
                .expect("authenticate")
                .expect("live");
        }
    }
    // The background flush runs after its short window; wait for it.
    let mut seen = last_seen(&store).await;
    for _ in 0..100 {
        if seen.iter().all(|at| *at >= later) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        seen = last_seen(&store).await;
    }
    assert_eq!(seen, vec![later, later], "both renewed, at their first use");
    let after = store.commands.stats();
    assert_eq!(
        after.commands - before.commands,
        1,
        "one command wrote both"
    );
}

#[tokio::test]
async fn idempotency_records_are_kept_for_the_window_then_purged() {
    let (_dir, store) = open().await;
    let now = now_ms();
    let answer = |body: &str| crate::store::idempotency::StoredResponse {
        request_hash: vec![1, 2, 3],
        status: 201,
        body: body.as_bytes().to_vec(),
        content_type: Some("application/json".into()),
    };
    let window = crate::store::idempotency::WINDOW_MS;
    super::idempotency::remember(&store, 7, "old", answer("{}"), now - window - 1)
        .await
        .expect("save old");
    super::idempotency::remember(&store, 7, "new", answer("{\"id\":1}"), now)
        .await
        .expect("save new");
    let found = crate::store::idempotency::find(&store.reader, 7, "new", now)
        .await
        .expect("find")
        .expect("kept");
    assert_eq!((found.status, found.body), (201, b"{\"id\":1}".to_vec()));
    assert_eq!(
        super::idempotency::purge(&store, now).await.expect("purge"),
        1
    );
    assert!(
        crate::store::idempotency::find(&store.reader, 7, "old", now - window)
            .await
            .expect("find")
            .is_none(),
        "the old one is gone"
    );
    assert!(
        crate::store::idempotency::find(&store.reader, 7, "new", now)
            .await
            .expect("find")
            .is_some()
    );
}
