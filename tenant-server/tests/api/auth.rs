//! Tokens: authentication, the scope × confinement × revocation matrix,
//! who may mint what, expiry, the bootstrap admin.

use crate::support::TestServer;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use taskharbor::store::{self, tokens};

#[tokio::test]
async fn requests_without_a_working_token_get_401_with_www_authenticate() {
    let server = TestServer::start().await;
    for token in [
        None,
        Some("th_notarealtokenbutlongenoughtolooklikeone123"),
        Some("garbage"),
    ] {
        let reply = server
            .send(token, Method::GET, "/api/boards", None, &[])
            .await;
        reply.expect_error(401, "unauthorized");
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }
    let via_header = server
        .send(
            None,
            Method::GET,
            "/api/me",
            None,
            &[("x-api-key", server.admin.clone())],
        )
        .await
        .expect(200);
    assert_eq!(via_header["worker"]["name"], "admin");
}

#[tokio::test]
async fn scopes_include_the_ones_below_and_nothing_above() {
    let server = TestServer::start().await;
    let board = server.board("SCOPE").await;
    let item = server.item(board, "scoped").await;
    let reader = server.token("reader", "agent", &["queue:read"], None).await;
    let writer = server
        .token("writer", "agent", &["queue:write"], None)
        .await;
    let board_admin = server
        .token("lead", "human", &["board:admin"], Some(board))
        .await;

    server
        .get(&reader, &format!("/api/items/{item}"))
        .await
        .expect(200);
    server
        .get(&reader, &format!("/api/allowed?board_id={board}"))
        .await
        .expect(200);
    server
        .post(&reader, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect_error(403, "forbidden");
    server
        .post(
            &reader,
            &format!("/api/boards/{board}/items"),
            json!({"title": "x"}),
        )
        .await
        .expect_error(403, "forbidden");

    server
        .post(&writer, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    server
        .patch(
            &writer,
            &format!("/api/boards/{board}"),
            json!({"claim_limit": 9}),
        )
        .await
        .expect_error(403, "forbidden");
    server
        .post(
            &writer,
            &format!("/api/boards/{board}/lanes"),
            json!({"name": "QA", "role": "review"}),
        )
        .await
        .expect_error(403, "forbidden");
    server.post(&writer, "/api/tokens", json!({"name": "x", "worker": {"name": "y", "kind": "agent"}, "scopes": ["queue:read"]})).await.expect_error(403, "forbidden");

    server
        .patch(
            &board_admin,
            &format!("/api/boards/{board}"),
            json!({"claim_limit": 9}),
        )
        .await
        .expect(200);
    server
        .post(
            &board_admin,
            &format!("/api/items/{item}/release"),
            json!({"reason": "force"}),
        )
        .await
        .expect(200);
    server
        .post(
            &board_admin,
            "/api/boards",
            json!({"name": "Other", "key": "OTHER"}),
        )
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_board_confined_token_sees_nothing_of_other_boards() {
    let server = TestServer::start().await;
    let mine = server.board("MINE").await;
    let theirs = server.board("THEIRS").await;
    let their_item = server.item(theirs, "secret").await;
    let their_lane = server.lane_id(theirs, "ready").await;
    let my_item = server.item(mine, "visible").await;
    let confined = server
        .token("confined", "agent", &["board:admin"], Some(mine))
        .await;

    let boards = server.get(&confined, "/api/boards").await.expect(200);
    let keys: Vec<&str> = boards["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .filter_map(|b| b["key"].as_str())
        .collect();
    assert_eq!(keys, ["MINE"]);
    for path in [
        format!("/api/boards/{theirs}"),
        format!("/api/boards/{theirs}/lanes"),
        format!("/api/boards/{theirs}/items"),
        format!("/api/items/{their_item}"),
        format!("/api/items/{their_item}/comments"),
        format!("/api/items/{their_item}/events"),
        format!("/api/allowed?board_id={theirs}"),
    ] {
        server
            .get(&confined, &path)
            .await
            .expect_error(404, "not_found");
    }
    server
        .post(
            &confined,
            &format!("/api/items/{their_item}/claim"),
            json!({}),
        )
        .await
        .expect_error(404, "not_found");
    server
        .patch(
            &confined,
            &format!("/api/lanes/{their_lane}"),
            json!({"name": "mine now"}),
        )
        .await
        .expect_error(404, "not_found");
    server
        .patch(
            &confined,
            &format!("/api/boards/{theirs}"),
            json!({"locked": true}),
        )
        .await
        .expect_error(404, "not_found");
    // claim-next without a board only looks at its own board.
    let next = server
        .post(&confined, "/api/claim-next", json!({}))
        .await
        .expect(200);
    assert_eq!(next["id"], json!(my_item));
    assert_eq!(
        server
            .post(&confined, "/api/claim-next", json!({}))
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn a_board_admin_mints_only_for_its_board_and_never_admin() {
    let server = TestServer::start().await;
    let mine = server.board("OWN").await;
    let other = server.board("ELSE").await;
    let lead = server
        .token("lead", "human", &["board:admin"], Some(mine))
        .await;
    let body = |board: Option<i64>, scopes: serde_json::Value| json!({"name": "bot", "worker": {"name": "lead-bot", "kind": "agent"}, "scopes": scopes, "board_id": board});
    let minted = server
        .post(
            &lead,
            "/api/tokens",
            body(Some(mine), json!(["queue:write"])),
        )
        .await
        .expect(201);
    assert!(
        minted["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("th_") && t.len() >= 35)
    );
    assert_eq!(minted["board_id"], json!(mine));
    server
        .post(
            &lead,
            "/api/tokens",
            body(Some(other), json!(["queue:write"])),
        )
        .await
        .expect_error(403, "forbidden");
    server
        .post(&lead, "/api/tokens", body(None, json!(["queue:write"])))
        .await
        .expect_error(403, "forbidden");
    server
        .post(&lead, "/api/tokens", body(Some(mine), json!(["admin"])))
        .await
        .expect_error(403, "forbidden");
    let listed = server.get(&lead, "/api/tokens").await.expect(200);
    let listed = listed["tokens"].as_array().expect("tokens");
    assert!(
        listed.iter().all(|t| t["board_id"] == json!(mine)),
        "a board admin lists only its board's tokens"
    );
    assert!(
        listed
            .iter()
            .all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "secrets are never listed"
    );
}

#[tokio::test]
async fn revocation_takes_effect_on_the_very_next_request() {
    let server = TestServer::start().await;
    let token = server.agent("short-lived").await;
    let me = server.get(&token, "/api/me").await.expect(200);
    let id = me["token_id"].as_i64().expect("token id");
    let revoked = server
        .delete(&server.admin, &format!("/api/tokens/{id}"))
        .await
        .expect(200);
    assert!(revoked["revoked_at"].is_string());
    server
        .get(&token, "/api/me")
        .await
        .expect_error(401, "unauthorized");
}

/// Authentication answers from a cache; revocation must still win on the
/// very next request, even while other requests keep the entry hot and
/// race to refill it.
#[tokio::test]
async fn revocation_beats_a_hot_auth_cache_under_concurrent_use() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let token = server.agent("hot").await;
    let me = server.get(&token, "/api/me").await.expect(200);
    let id = me["token_id"].as_i64().expect("token id");
    let revoked_at = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let mut users = Vec::new();
    for _ in 0..6 {
        let (server, token, revoked_at) = (server.clone(), token.clone(), revoked_at.clone());
        users.push(tokio::spawn(async move {
            let mut late_successes = 0;
            let mut refusals = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while refusals < 5 && std::time::Instant::now() < deadline {
                let started = std::time::Instant::now();
                let reply = server.get(&token, "/api/me").await;
                let after_revocation = revoked_at
                    .lock()
                    .expect("lock")
                    .is_some_and(|at| started >= at);
                match reply.status.as_u16() {
                    200 if after_revocation => late_successes += 1,
                    200 => {}
                    401 => refusals += 1,
                    429 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            late_successes
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server
        .delete(&server.admin, &format!("/api/tokens/{id}"))
        .await
        .expect(200);
    *revoked_at.lock().expect("lock") = Some(std::time::Instant::now());
    for user in users {
        assert_eq!(
            user.await.expect("user task"),
            0,
            "no request started after the revocation answered may succeed"
        );
    }
    server
        .get(&token, "/api/me")
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn an_expired_token_stops_working_and_a_past_expiry_is_refused() {
    let server = TestServer::start().await;
    let past = server
        .post(&server.admin, "/api/tokens", json!({"name": "t", "worker": {"name": "w", "kind": "agent"}, "scopes": ["queue:read"], "expires_at": "2001-01-01T00:00:00Z"}))
        .await;
    past.expect_error(422, "validation_failed");
    assert!(past.body["error"]["details"]["expires_at"].is_string());
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1200))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let token = server
        .post(&server.admin, "/api/tokens", json!({"name": "t", "worker": {"name": "w", "kind": "agent"}, "scopes": ["queue:read"], "expires_at": soon}))
        .await
        .expect(201)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    server.get(&token, "/api/me").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server
        .get(&token, "/api/me")
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes_and_last_use_is_recorded() {
    let server = TestServer::start().await;
    let token = server.agent("hashed").await;
    server.get(&token, "/api/me").await.expect(200);
    let stored: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT hash, prefix FROM tokens")
        .fetch_all(&server.state.store.reader)
        .await
        .expect("rows");
    for (hash, prefix) in &stored {
        assert_eq!(hash.len(), 32, "a SHA-256 digest");
        assert!(prefix.len() <= 9, "only a short prefix is kept for display");
    }
    let db = std::fs::read(server.dir.path().join("taskharbor.db")).expect("db");
    let wal = std::fs::read(server.dir.path().join("taskharbor.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the secret is not in the database file"
    );
    assert!(
        !wal.windows(needle.len()).any(|w| w == needle),
        "nor in its WAL"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = server.get(&server.admin, "/api/tokens").await.expect(200);
    let entry = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["worker"]["name"] == "hashed")
        .cloned()
        .expect("listed");
    assert!(entry["last_used_at"].is_string(), "{entry}");
}

#[tokio::test]
async fn the_bootstrap_token_is_installed_once_and_a_generated_one_is_not_repeated() {
    let server = TestServer::start().await;
    // An admin exists already (the harness bootstrapped one): nothing new.
    let again =
        taskharbor::commands::tokens::ensure_admin(&server.state.store, None, store::now_ms())
            .await
            .expect("bootstrap");
    assert_eq!(again, tokens::Bootstrap::AdminExists);

    let fresh = TestServer::start().await;
    let id = fresh.get(&fresh.admin, "/api/me").await.expect(200)["token_id"]
        .as_i64()
        .expect("id");
    fresh
        .delete(&fresh.admin, &format!("/api/tokens/{id}"))
        .await
        .expect(200);
    let chosen = "th_ChosenByTheOperatorForThisTenant_0123456789";
    let installed = taskharbor::commands::tokens::ensure_admin(
        &fresh.state.store,
        Some(chosen),
        store::now_ms(),
    )
    .await
    .expect("install");
    assert_eq!(installed, tokens::Bootstrap::Installed);
    let me = fresh.get(chosen, "/api/me").await.expect(200);
    assert_eq!(me["scopes"], json!(["admin"]));
    assert!(matches!(
        taskharbor::commands::tokens::ensure_admin(
            &fresh.state.store,
            Some("not-a-token"),
            store::now_ms()
        )
        .await,
        Err(tokens::BootstrapError::Malformed)
    ));
}
