//! Operations: health, metrics, the OpenAPI document, rate limits, backup.

use crate::support::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let server = TestServer::start().await;
    assert_eq!(
        server
            .send(None, Method::GET, "/healthz", None, &[])
            .await
            .expect(200)["status"],
        "ok"
    );
    assert_eq!(
        server
            .send(None, Method::GET, "/readyz", None, &[])
            .await
            .expect(200)["status"],
        "ready"
    );
}

#[tokio::test]
async fn metrics_count_claims_conflicts_and_latency_by_route_template() {
    let server = TestServer::start().await;
    let board = server.board("MET").await;
    let item = server.item(board, "measured").await;
    let a = server.agent("m-a").await;
    let b = server.agent("m-b").await;
    server
        .post(&a, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    server
        .post(&b, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect_error(409, "claim_conflict");
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for expected in [
        "taskharbor_claims_total{outcome=\"claimed\"} 1",
        "taskharbor_claims_total{outcome=\"claim_conflict\"} 1",
        "taskharbor_conflicts_total{code=\"claim_conflict\"} 1",
        "route=\"/api/items/{id}/claim\"",
        "taskharbor_queue_depth{board=\"MET\",status=\"ready\"} 1",
        "taskharbor_wip_saturation{board=\"MET\",lane=\"In_Progress\",lane_id=\"",
        // A few KiB of WAL: nowhere near a rewind, so none and no holds.
        "taskharbor_wal_rewinds_total{how=\"idle\"} 0",
        "taskharbor_wal_rewinds_total{how=\"forced\"} 0",
        "taskharbor_writer_rewind_holds_total{outcome=\"ended\"} 0",
        "taskharbor_writer_rewind_holds_total{outcome=\"expired\"} 0",
    ] {
        assert!(text.contains(expected), "metrics lack {expected}:\n{text}");
    }
    assert!(
        !text.contains(&format!("/api/items/{item}/claim")),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_matches_the_committed_copy() {
    let server = TestServer::start().await;
    let doc = server
        .send(None, Method::GET, "/api/openapi.json", None, &[])
        .await
        .expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/tokens", "post"),
        ("/api/tokens", "get"),
        ("/api/tokens/{id}", "delete"),
        ("/api/me", "get"),
        ("/api/boards", "post"),
        ("/api/boards/{id}", "patch"),
        ("/api/boards/{id}/lanes", "post"),
        ("/api/lanes/{id}", "delete"),
        ("/api/boards/{id}/items", "get"),
        ("/api/items/{id}", "patch"),
        ("/api/items/{id}/comments", "post"),
        ("/api/items/{id}/events", "get"),
        ("/api/allowed", "get"),
        ("/api/items/{id}/claim", "post"),
        ("/api/claim-next", "post"),
        ("/api/items/{id}/heartbeat", "post"),
        ("/api/items/{id}/release", "post"),
        ("/api/items/{id}/move", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed.trim() == taskharbor::api::ops::openapi_json().trim(),
        "docs/openapi.json is stale: regenerate it with `cargo run -p tenant-server -- openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let server = TestServer::start_with(|c| c.rate_limit_per_second = 2).await;
    let mut limited = None;
    for _ in 0..12 {
        let reply = server.get(&server.admin, "/api/me").await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let reply = limited.expect("the limit bites within 12 requests");
    reply.expect_error(429, "rate_limited");
    assert!(
        reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1))
    );
}

#[tokio::test]
async fn an_online_backup_restores_into_a_working_server() {
    let server = TestServer::start().await;
    let board = server.board("BAK").await;
    let item = server.item(board, "precious").await;
    let agent = server.agent("backup-agent").await;
    server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    let copy = tempfile::tempdir().expect("dir");
    let target = copy.path().join("backup.db");
    // Taken while the server is up and serving.
    taskharbor::store::backup(server.state.store.path(), &target)
        .await
        .expect("backup");
    assert!(
        taskharbor::store::backup(server.state.store.path(), &target)
            .await
            .is_err(),
        "never overwrites"
    );
    server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "after the backup"}),
        )
        .await
        .expect(201);
    let admin = server.admin.clone();
    drop(server.stop().await);

    // Restore = put the copy in place as taskharbor.db of a fresh data dir.
    let restored_dir = tempfile::tempdir().expect("dir");
    std::fs::copy(&target, restored_dir.path().join("taskharbor.db")).expect("restore");
    let config = taskharbor::config::Config::for_data_dir(restored_dir.path().to_owned());
    let state = taskharbor::AppState::open(config)
        .await
        .expect("open restored");
    let who = taskharbor::store::tokens::authenticate(
        &state.store.reader,
        &admin,
        taskharbor::store::now_ms(),
    )
    .await
    .expect("auth");
    let (principal, _) = who.expect("the admin token survives the restore");
    let restored = taskharbor::store::items::get(
        &state.store.reader,
        &principal,
        item,
        taskharbor::store::now_ms(),
    )
    .await
    .expect("item");
    assert_eq!(restored.title, "precious");
    assert_eq!(
        restored.claim.map(|c| c.worker.name),
        Some("backup-agent".to_owned())
    );
    let filter = taskharbor::store::items::ItemFilter {
        limit: 50,
        ..Default::default()
    };
    let all = taskharbor::store::items::list(
        &state.store.reader,
        &principal,
        board,
        &filter,
        taskharbor::store::now_ms(),
    )
    .await
    .expect("list");
    assert_eq!(all.len(), 1, "the copy is the state at backup time");
}
