//! GitHub/GitLab sync (issue 10) against stateful local stand-ins, checked
//! against GitHub's own artifacts (OpenAPI description, recorded API
//! fixtures, real webhook bodies, the reference webhook signer).

mod artifacts;
mod comments;
mod crash;
mod github;
mod gitlab;
mod panel;
mod private;
mod simulation;
pub mod standin;

use crate::support::TestServer;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use standin::{Remote, TOKEN};
use std::time::{Duration, Instant};
use taskharbor::config::Config;

pub const REPO: &str = "acme/widgets";

/// A server that may talk to loopback stand-ins, with the limiter off and
/// polling as given (ms; 0 = effectively never).
pub async fn server(poll_ms: u64, adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.allow_private_webhooks = true;
        c.sync_min_interval_ms = 0;
        c.sync_poll_interval_ms = if poll_ms == 0 { 3_600_000 } else { poll_ms };
        c.base_url = Some("https://board.example".into());
        adjust(c);
    })
    .await
}

/// Links `board` to the GitHub stand-in; returns the link (with its secret).
pub async fn link_github(s: &TestServer, board: i64, remote: &Remote, import: &str) -> Value {
    s.send(
        Some(&s.admin),
        reqwest::Method::PUT,
        &format!("/api/boards/{board}/sync"),
        Some(json!({"provider": "github", "repo": REPO, "api_url": remote.base, "token": TOKEN, "import": import})),
        &[],
    )
    .await
    .expect(200)
}

/// Polls `check` until it holds or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a synchronous probe until it yields a value or `secs` pass.
pub async fn wait_for<T>(secs: u64, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sha256=<hex>` of `body` under `secret` (our own HMAC; the artifact
/// tests check it equals GitHub's reference signer).
pub fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends a GitHub webhook delivery to our hook.
pub async fn deliver(
    s: &TestServer,
    board: i64,
    event: &str,
    payload: &Value,
    secret: &str,
    delivery: &str,
) -> reqwest::StatusCode {
    let body = payload.to_string();
    s.http
        .post(s.url(&format!("/hooks/github/{board}")))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(secret, &body))
        .body(body)
        .send()
        .await
        .expect("deliver")
        .status()
}

/// A real `issues` webhook body (from @octokit/webhooks-examples) made to
/// name issue `number` of our stand-in repository.
pub fn issues_payload(action: &str, number: i64, sender: &str) -> Value {
    // Bodies differ by action only in extra fields we do not read.
    let mut v = artifacts::webhook_example("issues", "edited");
    v["action"] = json!(action);
    v["issue"]["number"] = json!(number);
    v["sender"]["login"] = json!(sender);
    v["repository"]["full_name"] = json!(REPO);
    v
}

pub fn comment_payload(number: i64, comment_id: i64, body: &str, author: &str) -> Value {
    comment_event("created", number, comment_id, body, author)
}

/// A real `issue_comment` body of `action` (created, edited, deleted).
pub fn comment_event(
    action: &str,
    number: i64,
    comment_id: i64,
    body: &str,
    author: &str,
) -> Value {
    let mut v = artifacts::webhook_example("issue_comment", action);
    v["issue"]["number"] = json!(number);
    if let Some(obj) = v["issue"].as_object_mut() {
        obj.remove("pull_request");
    }
    v["comment"]["id"] = json!(comment_id);
    v["comment"]["body"] = json!(body);
    v["comment"]["user"]["login"] = json!(author);
    v
}

/// The item's `sync` number, once it has one.
pub async fn remote_number(s: &TestServer, item: i64) -> Option<i64> {
    s.item_json(item).await["sync"]["number"].as_i64()
}
