//! Bad input gets its documented status and code, in the API.md shape,
//! and changes nothing.

use crate::support::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

/// Everything a rejected request could have changed.
async fn snapshot(server: &TestServer, board: i64) -> Value {
    let items = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?limit=200"),
        )
        .await
        .expect(200);
    let lanes = server
        .get(&server.admin, &format!("/api/boards/{board}/lanes"))
        .await
        .expect(200);
    let b = server
        .get(&server.admin, &format!("/api/boards/{board}"))
        .await
        .expect(200);
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&server.state.store.reader)
        .await
        .expect("count");
    json!({"items": items, "lanes": lanes, "board": b, "events": events})
}

async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    body: &'static str,
) -> crate::support::Reply {
    let res = server
        .http
        .request(method, server.url(path))
        .bearer_auth(&server.admin)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    crate::support::Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn malformed_or_mistyped_bodies_are_400_invalid_request_and_change_nothing() {
    let server = TestServer::start().await;
    let board = server.board("BAD").await;
    let item = server.item(board, "target").await;
    let before = snapshot(&server, board).await;
    let items = format!("/api/boards/{board}/items");
    let item_path = format!("/api/items/{item}");
    let cases: Vec<(Method, String, &'static str)> = vec![
        (Method::POST, items.clone(), "{\"title\": "),
        (Method::POST, items.clone(), "[1, 2"),
        (Method::POST, items.clone(), "{\"title\": 42}"),
        (
            Method::POST,
            items.clone(),
            "{\"title\": \"x\", \"priority\": \"high\"}",
        ),
        (
            Method::POST,
            items.clone(),
            "{\"title\": \"x\", \"kind\": \"epic\"}",
        ),
        (
            Method::POST,
            items.clone(),
            "{\"title\": \"x\", \"labels\": \"ui\"}",
        ),
        (
            Method::POST,
            items.clone(),
            "{\"title\": \"x\", \"priority\": 1.5}",
        ),
        (
            Method::PATCH,
            item_path.clone(),
            "{\"agent_ready\": \"yes\"}",
        ),
        (
            Method::POST,
            format!("{item_path}/move"),
            "{\"status\": \"shipped\"}",
        ),
        (
            Method::POST,
            format!("{item_path}/comments"),
            "{\"body\": \"x\", \"kind\": \"rant\"}",
        ),
        (
            Method::POST,
            "/api/claim-next".into(),
            "{\"kinds\": [\"story\"]}",
        ),
        (
            Method::POST,
            format!("/api/boards/{board}/lanes"),
            "{\"name\": \"x\", \"role\": \"limbo\"}",
        ),
        (
            Method::PATCH,
            format!("/api/boards/{board}"),
            "{\"claim_limit\": \"three\"}",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            "{\"name\": \"t\", \"worker\": {\"name\": \"w\", \"kind\": \"robot\"}, \"scopes\": [\"queue:read\"]}",
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            "{\"name\": \"t\", \"worker\": {\"name\": \"w\", \"kind\": \"agent\"}, \"scopes\": [\"root\"]}",
        ),
    ];
    for (method, path, body) in cases {
        let reply = raw(&server, method.clone(), &path, body).await;
        assert_eq!(
            reply.status, 400,
            "{method} {path} {body} -> {}",
            reply.body
        );
        reply.expect_error(400, "invalid_request");
    }
    // Not JSON at all.
    let text = server
        .http
        .post(server.url(&items))
        .bearer_auth(&server.admin)
        .header("content-type", "text/plain")
        .body("title=x")
        .send()
        .await
        .expect("send");
    assert_eq!(text.status(), 400);
    for path in [
        "/api/items/abc",
        "/api/boards/1.5",
        "/api/boards/x/stats",
        "/api/boards/1/stats?from=2026-01-01&from=2026-01-02",
    ] {
        server
            .get(&server.admin, path)
            .await
            .expect_error(400, "invalid_request");
    }
    server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?status=shipped"),
        )
        .await
        .expect_error(400, "invalid_request");
    server
        .get(&server.admin, &format!("/api/boards/{board}/items?limit=0"))
        .await
        .expect_error(400, "invalid_request");
    server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?cursor=forged"),
        )
        .await
        .expect_error(400, "invalid_request");
    let ifmatch = server
        .send(
            Some(&server.admin),
            Method::PATCH,
            &item_path,
            Some(json!({"title": "y"})),
            &[("if-match", "soon".into())],
        )
        .await;
    ifmatch.expect_error(400, "invalid_request");
    let fence = server
        .send(
            Some(&server.admin),
            Method::POST,
            &format!("{item_path}/heartbeat"),
            None,
            &[("x-claim-token", "x".into())],
        )
        .await;
    fence.expect_error(400, "invalid_request");
    assert_eq!(snapshot(&server, board).await, before, "nothing changed");
}

#[tokio::test]
async fn well_formed_but_invalid_values_are_422_with_per_field_details_and_change_nothing() {
    let server = TestServer::start().await;
    let board = server.board("VAL").await;
    let item = server.item(board, "target").await;
    let before = snapshot(&server, board).await;
    let items = format!("/api/boards/{board}/items");
    let reply = server
        .post(
            &server.admin,
            &items,
            json!({"title": "   ", "priority": 7, "labels": [""]}),
        )
        .await;
    reply.expect_error(422, "validation_failed");
    let details = &reply.body["error"]["details"];
    assert!(
        details["title"].is_string()
            && details["priority"].is_string()
            && details["labels"].is_string(),
        "{details}"
    );
    for body in [
        json!({"title": "x".repeat(301)}),
        json!({"title": "x", "priority": -1}),
        json!({"title": "x", "kind": "subtask"}),
        json!({"title": "x", "parent_id": 999_999}),
        json!({"title": "x", "blocked_by": [999_999]}),
        json!({"title": "x", "lane_id": 999_999}),
    ] {
        server
            .post(&server.admin, &items, body)
            .await
            .expect_error(422, "validation_failed");
    }
    let path = format!("/api/items/{item}");
    server
        .patch(&server.admin, &path, json!({"title": ""}))
        .await
        .expect_error(422, "validation_failed");
    server
        .patch(&server.admin, &path, json!({"blocked_by": [item]}))
        .await
        .expect_error(422, "validation_failed");
    server
        .patch(&server.admin, &path, json!({"parent_id": item}))
        .await
        .expect_error(422, "validation_failed");
    server
        .post(
            &server.admin,
            &format!("{path}/comments"),
            json!({"body": "  "}),
        )
        .await
        .expect_error(422, "validation_failed");
    server
        .post(&server.admin, &format!("{path}/move"), json!({}))
        .await
        .expect_error(422, "validation_failed");
    server
        .post(
            &server.admin,
            &format!("{path}/move"),
            json!({"lane_id": 999_999}),
        )
        .await
        .expect_error(422, "validation_failed");
    for body in [
        json!({"claim_limit": 0}),
        json!({"agent_lease_seconds": 0}),
        json!({"human_lease_seconds": -5}),
        json!({"name": ""}),
    ] {
        server
            .patch(&server.admin, &format!("/api/boards/{board}"), body)
            .await
            .expect_error(422, "validation_failed");
    }
    server
        .post(
            &server.admin,
            "/api/boards",
            json!({"name": "dup", "key": "VAL"}),
        )
        .await
        .expect_error(422, "validation_failed");
    server
        .post(
            &server.admin,
            "/api/boards",
            json!({"name": "bad key", "key": "lower"}),
        )
        .await
        .expect_error(422, "validation_failed");
    server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/lanes"),
            json!({"name": "QA", "role": "review", "wip_limit": -1}),
        )
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(snapshot(&server, board).await, before, "nothing changed");
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404_in_the_error_shape() {
    let server = TestServer::start().await;
    for path in [
        "/api/items/424242",
        "/api/boards/424242",
        "/api/boards/424242/lanes",
        "/api/boards/424242/items",
        "/api/boards/424242/stats",
        "/api/items/424242/events",
        "/api/nothing-here",
    ] {
        server
            .get(&server.admin, path)
            .await
            .expect_error(404, "not_found");
    }
    server
        .post(&server.admin, "/api/items/424242/claim", json!({}))
        .await
        .expect_error(404, "not_found");
    server
        .patch(&server.admin, "/api/lanes/424242", json!({"name": "x"}))
        .await
        .expect_error(404, "not_found");
    server
        .delete(&server.admin, "/api/tokens/424242")
        .await
        .expect_error(404, "not_found");
    let wrong_method = server
        .send(Some(&server.admin), Method::PUT, "/api/allowed", None, &[])
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.code(), "method_not_allowed");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_changes_nothing() {
    let server = TestServer::start().await;
    let board = server.board("BIG").await;
    let before = snapshot(&server, board).await;
    let huge = "x".repeat(1024 * 1024 + 10);
    let reply = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "big", "body": huge}),
        )
        .await;
    reply.expect_error(413, "payload_too_large");
    assert_eq!(reply.body["error"]["details"]["limit"], json!(1024 * 1024));
    let keyed = server
        .send(
            Some(&server.admin),
            Method::POST,
            &format!("/api/boards/{board}/items"),
            Some(json!({"title": "big", "body": huge})),
            &[("idempotency-key", "big-1".into())],
        )
        .await;
    keyed.expect_error(413, "payload_too_large");
    assert_eq!(snapshot(&server, board).await, before);
}
