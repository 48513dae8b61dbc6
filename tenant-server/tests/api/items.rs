//! Items: versions, If-Match, Idempotency-Key, lists and history.

use crate::support::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn if_match_guards_edits_and_version_grows_only_with_real_changes() {
    let server = TestServer::start().await;
    let board = server.board("VER").await;
    let item = server.item(board, "versioned").await;
    let path = format!("/api/items/{item}");
    let got = server.get(&server.admin, &path).await;
    assert_eq!(
        got.headers.get("etag").and_then(|v| v.to_str().ok()),
        Some("\"1\"")
    );
    let edited = server
        .send(
            Some(&server.admin),
            Method::PATCH,
            &path,
            Some(json!({"title": "v2"})),
            &[("if-match", "\"1\"".into())],
        )
        .await;
    assert_eq!(
        edited.headers.get("etag").and_then(|v| v.to_str().ok()),
        Some("\"2\"")
    );
    assert_eq!(edited.expect(200)["version"], json!(2));
    let stale = server
        .send(
            Some(&server.admin),
            Method::PATCH,
            &path,
            Some(json!({"title": "lost update"})),
            &[("if-match", "\"1\"".into())],
        )
        .await;
    stale.expect_error(412, "version_mismatch");
    assert_eq!(stale.body["error"]["details"]["current"], json!(2));
    let same = server
        .patch(&server.admin, &path, json!({"title": "v2"}))
        .await
        .expect(200);
    assert_eq!(
        same["version"],
        json!(2),
        "an edit that changes nothing is not a new version"
    );
    // Claims and comments do not bump the version.
    server
        .post(&server.admin, &format!("{path}/claim"), json!({}))
        .await
        .expect(200);
    server
        .post(
            &server.admin,
            &format!("{path}/comments"),
            json!({"body": "note"}),
        )
        .await
        .expect(201);
    let now = server.item_json(item).await;
    assert_eq!(now["version"], json!(2));
    assert_eq!(now["title"], "v2");
    let history = server
        .get(&server.admin, &format!("{path}/events"))
        .await
        .expect(200);
    let update = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "item.updated")
        .cloned()
        .expect("update event");
    assert_eq!(
        update["data"]["changes"]["title"],
        json!({"before": "versioned", "after": "v2"})
    );
    assert_eq!(update["actor"]["name"], "admin");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_changes_nothing() {
    let server = TestServer::start().await;
    let board = server.board("IDEM").await;
    let path = format!("/api/boards/{board}/items");
    let key = [("idempotency-key", "create-42".to_owned())];
    let first = server
        .send(
            Some(&server.admin),
            Method::POST,
            &path,
            Some(json!({"title": "once"})),
            &key,
        )
        .await;
    let second = server
        .send(
            Some(&server.admin),
            Method::POST,
            &path,
            Some(json!({"title": "once"})),
            &key,
        )
        .await;
    assert_eq!(first.status, 201);
    assert_eq!(second.status, 201);
    assert_eq!(first.body, second.body, "the replay is the first response");
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let listed = server.get(&server.admin, &path).await.expect(200);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "created once"
    );
    let reused = server
        .send(
            Some(&server.admin),
            Method::POST,
            &path,
            Some(json!({"title": "different"})),
            &key,
        )
        .await;
    reused.expect_error(422, "validation_failed");
    // Keys belong to their worker: another worker's same key is its own.
    let other = server.human("other-human").await;
    server
        .send(
            Some(&other),
            Method::POST,
            &path,
            Some(json!({"title": "once"})),
            &key,
        )
        .await
        .expect(201);
    // A claim retried with its key is answered from the record, even after the state moved on.
    let item = server.item(board, "claim once").await;
    let agent = server.agent("retrier").await;
    let claim_key = [("idempotency-key", "claim-1".to_owned())];
    let claim_path = format!("/api/items/{item}/claim");
    let claimed = server
        .send(
            Some(&agent),
            Method::POST,
            &claim_path,
            Some(json!({})),
            &claim_key,
        )
        .await
        .expect(200);
    server
        .post(&agent, &format!("/api/items/{item}/release"), json!({}))
        .await
        .expect(200);
    let replay = server
        .send(
            Some(&agent),
            Method::POST,
            &claim_path,
            Some(json!({})),
            &claim_key,
        )
        .await
        .expect(200);
    assert_eq!(replay, claimed);
    assert!(
        server.item_json(item).await["claim"].is_null(),
        "the replay claimed nothing"
    );
}

#[tokio::test]
async fn lists_filter_and_page_with_an_opaque_cursor() {
    let server = TestServer::start().await;
    let board = server.board("LIST").await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let kind = if n % 3 == 0 { "defect" } else { "task" };
        ids.push(server.item_with(board, json!({"title": format!("item {n} 100%_done"), "kind": kind, "labels": [format!("l{}", n % 2)], "agent_ready": true})).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/boards/{board}/items?limit=3&cursor={c}"),
            None => format!("/api/boards/{board}/items?limit=3"),
        };
        let page = server.get(&server.admin, &path).await.expect(200);
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|i| i["id"].as_i64()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let defects = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?kind=defect"),
        )
        .await
        .expect(200);
    assert_eq!(defects["items"].as_array().map(Vec::len), Some(3));
    let labelled = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?label=l1"),
        )
        .await
        .expect(200);
    assert_eq!(labelled["items"].as_array().map(Vec::len), Some(3));
    let found = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?q=item%204"),
        )
        .await
        .expect(200);
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    let literal = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?q=100%25_d"),
        )
        .await
        .expect(200);
    assert_eq!(
        literal["items"].as_array().map(Vec::len),
        Some(7),
        "% and _ are matched literally"
    );
    let agent = server.agent("lister").await;
    server
        .post(&agent, &format!("/api/items/{}/claim", ids[2]), json!({}))
        .await
        .expect(200);
    for filter in ["claimed_by=lister".to_owned(), "claimed_by=me".to_owned()] {
        let token = if filter.ends_with("me") {
            &agent
        } else {
            &server.admin
        };
        let held = server
            .get(token, &format!("/api/boards/{board}/items?{filter}"))
            .await
            .expect(200);
        let held: Vec<i64> = held["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect();
        assert_eq!(held, vec![ids[2]], "{filter}");
    }
    let ready = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?status=ready"),
        )
        .await
        .expect(200);
    assert_eq!(ready["items"].as_array().map(Vec::len), Some(7));
}

#[tokio::test]
async fn items_get_keys_default_lanes_subtasks_and_agent_ready_events() {
    let server = TestServer::start().await;
    let board = server.board("CORE").await;
    let backlog = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "idea"}),
        )
        .await
        .expect(201);
    assert_eq!(backlog["key"], "CORE-1");
    assert_eq!(backlog["status"], "backlog");
    assert_eq!(backlog["priority"], json!(2));
    assert_eq!(backlog["kind"], "task");
    let ready = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "go", "agent_ready": true}),
        )
        .await
        .expect(201);
    assert_eq!(ready["key"], "CORE-2");
    assert_eq!(ready["status"], "ready");
    let parent = backlog["id"].as_i64().expect("id");
    let sub = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "part", "kind": "subtask", "parent_id": parent}),
        )
        .await
        .expect(201);
    assert_eq!(sub["parent_id"], json!(parent));
    let ready_id = ready["id"].as_i64().expect("id");
    assert_eq!(
        server.events(ready_id).await,
        ["item.created", "item.agent-ready"]
    );
    assert_eq!(server.events(parent).await, ["item.created"]);
    server
        .patch(
            &server.admin,
            &format!("/api/items/{parent}"),
            json!({"agent_ready": true}),
        )
        .await
        .expect(200);
    assert_eq!(
        server.events(parent).await,
        ["item.created", "item.updated", "item.agent-ready"]
    );
}

#[tokio::test]
async fn lanes_can_be_added_reordered_retyped_and_deleted_when_empty() {
    let server = TestServer::start().await;
    let board = server.board("LANES").await;
    let qa = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/lanes"),
            json!({"name": "QA", "role": "review", "position": 1, "wip_limit": 2, "who": "humans"}),
        )
        .await
        .expect(201);
    let names: Vec<String> = server
        .lanes(board)
        .await
        .iter()
        .map(|l| l["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "Backlog",
            "QA",
            "Ready",
            "In Progress",
            "Review",
            "Blocked",
            "Done"
        ]
    );
    let qa_id = qa["id"].as_i64().expect("id");
    let moved = server
        .patch(
            &server.admin,
            &format!("/api/lanes/{qa_id}"),
            json!({"position": 5, "wip_limit": null}),
        )
        .await
        .expect(200);
    assert!(moved["wip_limit"].is_null());
    let positions: Vec<(String, i64)> = server
        .lanes(board)
        .await
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("").to_owned(),
                l["position"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(positions[5], ("QA".to_owned(), 5));
    let item = server.item_with(board, json!({"title": "in qa"})).await;
    server
        .post(
            &server.admin,
            &format!("/api/items/{item}/move"),
            json!({"lane_id": qa_id}),
        )
        .await
        .expect(200);
    server
        .delete(&server.admin, &format!("/api/lanes/{qa_id}"))
        .await
        .expect_error(422, "validation_failed");
    // Retyping a lane retypes its items.
    server
        .patch(
            &server.admin,
            &format!("/api/lanes/{qa_id}"),
            json!({"role": "ready"}),
        )
        .await
        .expect(200);
    assert_eq!(server.item_json(item).await["status"], "ready");
    server
        .post(
            &server.admin,
            &format!("/api/items/{item}/move"),
            json!({"status": "backlog"}),
        )
        .await
        .expect(200);
    assert_eq!(
        server
            .delete(&server.admin, &format!("/api/lanes/{qa_id}"))
            .await
            .status,
        204
    );
    assert_eq!(server.lanes(board).await.len(), 6);
}
