//! Wake-on-queue: signed webhooks from a durable outbox, the SSRF guard,
//! the event feed and its SSE stream, and the long-poll.

use crate::receiver::{Receiver, verify_with_reference};
use crate::support::TestServer;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn private_ok(adjust: impl FnOnce(&mut taskharbor::config::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.allow_private_webhooks = true;
        adjust(c);
    })
    .await
}

/// Subscribes `url` to `events` on `board`; returns (id, secret).
async fn subscribe(server: &TestServer, board: i64, url: &str, events: Value) -> (i64, String) {
    let created = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/webhooks"),
            json!({"url": url, "events": events}),
        )
        .await
        .expect(201);
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    (created["id"].as_i64().expect("id"), secret)
}

#[tokio::test]
async fn an_agent_ready_item_fires_a_signed_thin_webhook_that_the_reference_verifier_accepts() {
    let server = private_ok(|_| {}).await;
    let board = server.board("WAKE").await;
    let receiver = Receiver::start(vec![]).await;
    let (_, secret) = subscribe(&server, board, &receiver.url, json!(["item.agent-ready"])).await;
    let item = server.item(board, "wake an agent").await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "only the subscribed type is delivered");
    let body = got[0].json();
    assert_eq!(body["type"], "item.agent-ready");
    assert!(body["timestamp"].is_string());
    assert_eq!(body["data"]["item_id"], json!(item));
    assert_eq!(body["data"]["board_id"], json!(board));
    assert_eq!(body["data"]["item"]["key"], "WAKE-1");
    assert_eq!(body["data"]["item"]["status"], "ready");
    assert!(body["data"]["item"]["claim"].is_null());
    assert!(
        body["data"].get("title").is_none() && body["data"]["item"].get("title").is_none(),
        "payloads are thin"
    );
    assert!(got[0].header("webhook-id").starts_with("msg_"));
    assert!(got[0].header("webhook-signature").starts_with("v1,"));
    let verdicts = verify_with_reference(&secret, &got);
    assert_eq!(verdicts[0]["ok"], json!(true), "{verdicts:?}");
    // A wrong secret is rejected by the same verifier: the check can fail.
    let wrong = verify_with_reference("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &got);
    assert_eq!(wrong[0]["ok"], json!(false));
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_webhook_id_and_each_attempt_is_logged() {
    let server = private_ok(|c| c.webhook_retry_scale = 0.001).await;
    let board = server.board("RETRY").await;
    let receiver = Receiver::start(vec![(500, None), (503, None)]).await;
    let (hook, secret) = subscribe(&server, board, &receiver.url, json!(["item.created"])).await;
    server.item(board, "persist").await;
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    let ids: Vec<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same webhook-id on every attempt: {ids:?}"
    );
    assert!(
        got.windows(2).all(|w| w[0].body == w[1].body),
        "the same body every time"
    );
    assert!(
        verify_with_reference(&secret, &got)
            .iter()
            .all(|v| v["ok"] == json!(true))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server
        .get(&server.admin, &format!("/api/webhooks/{hook}/deliveries"))
        .await
        .expect(200);
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"], json!(3));
    let codes: Vec<i64> = delivery["attempt_log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|a| a["status_code"].as_i64())
        .collect();
    assert_eq!(codes, vec![500, 503, 200]);
    // A manual retry sends it once more, still with the same id.
    let delivery_id = delivery["id"].as_i64().expect("id");
    server
        .post(
            &server.admin,
            &format!("/api/webhooks/{hook}/deliveries/{delivery_id}/retry"),
            json!({}),
        )
        .await
        .expect(202);
    let again = receiver.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(again[3].header("webhook-id"), ids[0]);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = private_ok(|c| c.webhook_retry_scale = 0.001).await;
    let board = server.board("LATER").await;
    let receiver = Receiver::start(vec![(429, Some(1))]).await;
    subscribe(&server, board, &receiver.url, json!(["item.created"])).await;
    server.item(board, "slow down").await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "waited only {gap:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn a_410_gone_disables_the_endpoint_with_an_event() {
    let server = private_ok(|_| {}).await;
    let board = server.board("GONE").await;
    let receiver = Receiver::start(vec![(410, None)]).await;
    let (hook, _) = subscribe(&server, board, &receiver.url, json!([])).await;
    server.item_with(board, json!({"title": "first"})).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server
        .get(&server.admin, &format!("/api/webhooks/{hook}"))
        .await
        .expect(200);
    assert_eq!(after["enabled"], json!(false));
    assert!(
        after["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    );
    server.item_with(board, json!({"title": "second"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "a disabled endpoint gets nothing more"
    );
    let feed = server
        .get(&server.admin, &format!("/api/events?board_id={board}"))
        .await
        .expect(200);
    assert!(
        feed["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "webhook.disabled")
    );
    // Re-enabling brings it back for new events.
    server
        .patch(
            &server.admin,
            &format!("/api/webhooks/{hook}"),
            json!({"enabled": true}),
        )
        .await
        .expect(200);
    server.item_with(board, json!({"title": "third"})).await;
    receiver.wait_for(2, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_delivery_pending_across_a_restart_still_arrives_exactly_as_signed() {
    // Retry 5 s × 0.4 = 2 s after the first failure: the server is stopped
    // inside that window and a new one is started on the same data.
    let server = private_ok(|c| c.webhook_retry_scale = 0.4).await;
    let board = server.board("BOOT").await;
    let receiver = Receiver::start(vec![(500, None)]).await;
    let (_, secret) = subscribe(&server, board, &receiver.url, json!(["item.created"])).await;
    server.item(board, "survive").await;
    let first = receiver.wait_for(1, Duration::from_secs(5)).await;
    let admin = server.admin.clone();
    let dir = server.stop().await;
    let restarted = TestServer::start_in(dir, Some(admin), |c| {
        c.allow_private_webhooks = true;
        c.webhook_retry_scale = 0.4;
    })
    .await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(got[1].body, first[0].body);
    assert!(
        verify_with_reference(&secret, &got[1..])
            .iter()
            .all(|v| v["ok"] == json!(true))
    );
    drop(restarted);
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_during_the_overlap() {
    let server = private_ok(|_| {}).await;
    let board = server.board("ROT").await;
    let receiver = Receiver::start(vec![]).await;
    let (hook, old) = subscribe(&server, board, &receiver.url, json!(["item.created"])).await;
    let rotated = server
        .post(
            &server.admin,
            &format!("/api/webhooks/{hook}/rotate-secret"),
            json!({"overlap_seconds": 3600}),
        )
        .await
        .expect(200);
    let new = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    server.item(board, "rotated").await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        got[0].header("webhook-signature").split(' ').count(),
        2,
        "both keys sign"
    );
    assert_eq!(verify_with_reference(&new, &got)[0]["ok"], json!(true));
    assert_eq!(verify_with_reference(&old, &got)[0]["ok"], json!(true));
}

#[tokio::test]
async fn webhook_targets_on_private_networks_and_odd_schemes_are_refused_with_422() {
    let server = TestServer::start().await;
    let board = server.board("SSRF").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/hook",
        "http://localhost:9000/hook",
        "file:///etc/passwd",
        "ftp://example.com/hook",
    ] {
        let reply = server
            .post(
                &server.admin,
                &format!("/api/boards/{board}/webhooks"),
                json!({"url": url}),
            )
            .await;
        reply.expect_error(422, "validation_failed");
        assert!(
            reply.body["error"]["details"]["url"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{url}: {}",
            reply.body
        );
    }
    let list = server
        .get(&server.admin, &format!("/api/boards/{board}/webhooks"))
        .await
        .expect(200);
    assert_eq!(list["webhooks"], json!([]), "nothing was stored");
    // Only board admins manage webhooks.
    let agent = server.agent("nosy").await;
    server
        .get(&agent, &format!("/api/boards/{board}/webhooks"))
        .await
        .expect_error(403, "forbidden");
}

/// Reads Server-Sent Events until `count` events arrived.
async fn read_sse(mut response: reqwest::Response, count: usize) -> Vec<(i64, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        let chunk = tokio::time::timeout(deadline - Instant::now(), response.chunk())
            .await
            .expect("events in time")
            .expect("chunk")
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if let Some(id) = id {
                events.push((id, kind, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_event_stream_is_ordered_resumable_without_gaps_and_confined() {
    let server = TestServer::start().await;
    let board = server.board("SSE").await;
    let other = server.board("OTHER").await;
    let open = |token: &str, path: String, last: Option<i64>| {
        let mut req = server.http.get(server.url(&path)).bearer_auth(token);
        if let Some(last) = last {
            req = req.header("last-event-id", last.to_string());
        }
        req.send()
    };
    let live = open(
        &server.admin,
        format!("/api/events/stream?board_id={board}"),
        None,
    )
    .await
    .expect("stream");
    assert_eq!(live.status(), 200);
    assert!(
        live.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let item = server.item(board, "streamed").await;
    server.item(other, "elsewhere").await;
    let agent = server.agent("streamer").await;
    server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    let first = read_sse(live, 3).await;
    let kinds: Vec<&str> = first.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["item.created", "item.agent-ready", "item.claimed"]);
    assert!(first.windows(2).all(|w| w[0].0 < w[1].0), "ids ascend");
    assert!(
        first.iter().all(|(_, _, e)| e["board_id"] == json!(board)),
        "only the asked board"
    );
    // Resume after the first event: exactly the rest, then what is new.
    server
        .post(&agent, &format!("/api/items/{item}/release"), json!({}))
        .await
        .expect(200);
    let resumed = open(
        &server.admin,
        format!("/api/events/stream?board_id={board}"),
        Some(first[0].0),
    )
    .await
    .expect("stream");
    let rest = read_sse(resumed, 4).await;
    let ids: Vec<i64> = rest.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(
        &ids[..2],
        &[first[1].0, first[2].0],
        "no gap and no duplicate"
    );
    assert_eq!(rest[2].1, "item.released");
    // A token confined to the other board cannot stream this one.
    let confined = server
        .token("confined-streamer", "agent", &["queue:read"], Some(other))
        .await;
    let refused = open(
        &confined,
        format!("/api/events/stream?board_id={board}"),
        None,
    )
    .await
    .expect("response");
    assert_eq!(refused.status(), 404);
    let feed = server
        .get(&confined, "/api/events?after=0")
        .await
        .expect(200);
    assert!(
        feed["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["board_id"] == json!(other))
    );
    server
        .send(None, Method::GET, "/api/events/stream", None, &[])
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn a_long_poll_answers_within_100_ms_of_work_appearing() {
    let server = TestServer::start().await;
    let board = server.board("POLL").await;
    let agent = server.agent("waiter").await;
    let poll = {
        let req = server
            .http
            .get(server.url(&format!("/api/allowed?board_id={board}&wait=10")))
            .bearer_auth(&agent);
        tokio::spawn(async move {
            let body: Value = req.send().await.expect("poll").json().await.expect("json");
            (Instant::now(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!poll.is_finished(), "nothing claimable yet: the poll waits");
    server.item(board, "appears").await;
    let created = Instant::now();
    let (answered, body) = poll.await.expect("poll task");
    let delay = answered.saturating_duration_since(created);
    assert!(
        delay < Duration::from_millis(100),
        "answered {delay:?} after the work appeared"
    );
    assert_eq!(body["items"][0]["title"], "appears");
    server
        .get(&agent, &format!("/api/allowed?board_id={board}&wait=61"))
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_and_delivery_metrics_are_exported() {
    let server = private_ok(|_| {}).await;
    let board = server.board("DAYS").await;
    let receiver = Receiver::start(vec![(500, None), (500, None)]).await;
    let (hook, _) = subscribe(&server, board, &receiver.url, json!(["item.created"])).await;
    // As if it had been failing since four days ago.
    let four_days_ago = taskharbor::store::now_ms() - 4 * 24 * 3600 * 1000;
    sqlx::query("UPDATE webhooks SET failing_since = ? WHERE id = ?")
        .bind(four_days_ago)
        .bind(hook)
        .execute(&server.state.store.writer)
        .await
        .expect("update");
    server.item(board, "one more failure").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server
        .get(&server.admin, &format!("/api/webhooks/{hook}"))
        .await
        .expect(200);
    assert_eq!(after["enabled"], json!(false));
    assert!(
        after["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("three days")),
        "{after}"
    );
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("taskharbor_webhook_attempts_total{outcome=\"disabled\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("taskharbor_webhook_attempt_duration_seconds_count 1"));
    assert!(metrics.contains("taskharbor_webhook_outbox_depth 0"));
}
