//! GitHub sync behaviours against the stand-in: linking, every mirrored
//! field both ways, exactly one issue per item under faults, rate limits,
//! signatures, redelivery, echo, conflicts, import, sync off, unlink.

use super::standin::{Fault, Remote, TOKEN};
use super::*;
use crate::support::TestServer;
use reqwest::Method;
use serde_json::json;

async fn put_link(s: &TestServer, board: i64, body: Value) -> crate::support::Reply {
    s.send(
        Some(&s.admin),
        Method::PUT,
        &format!("/api/boards/{board}/sync"),
        Some(body),
        &[],
    )
    .await
}

#[tokio::test]
async fn linking_checks_repository_and_token_with_the_provider_and_never_returns_the_token() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("LNK").await;
    let base = json!({"provider": "github", "repo": REPO, "api_url": remote.base, "token": TOKEN, "import": "none"});
    let mut unknown = base.clone();
    unknown["repo"] = json!("acme/nope");
    let r = put_link(&s, board, unknown).await;
    r.expect_error(422, "validation_failed");
    assert!(r.body["error"]["details"]["repo"].is_string(), "{}", r.body);
    let mut bad_token = base.clone();
    bad_token["token"] = json!("ghp_wrong");
    let r = put_link(&s, board, bad_token).await;
    r.expect_error(422, "validation_failed");
    assert!(
        r.body["error"]["details"]["token"].is_string(),
        "{}",
        r.body
    );
    let mut no_token = base.clone();
    no_token.as_object_mut().map(|o| o.remove("token"));
    put_link(&s, board, no_token)
        .await
        .expect_error(422, "validation_failed");
    let mut malformed = base.clone();
    malformed["repo"] = json!("just-a-name");
    put_link(&s, board, malformed)
        .await
        .expect_error(422, "validation_failed");
    // Nothing was stored by the refusals.
    s.get(&s.admin, &format!("/api/boards/{board}/sync"))
        .await
        .expect_error(404, "not_found");

    let link = put_link(&s, board, base.clone()).await.expect(200);
    let secret = link["webhook_secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        link["webhook_url"],
        format!("https://board.example/hooks/github/{board}")
    );
    assert_eq!(link["state"], "ok");
    let shown = s
        .get(&s.admin, &format!("/api/boards/{board}/sync"))
        .await
        .expect(200);
    assert!(shown.get("webhook_secret").is_none());
    assert!(!shown.to_string().contains(TOKEN));
    // At rest the token and secret are sealed.
    let (token_col, secret_col): (Option<String>, String) =
        sqlx::query_as("SELECT token_sealed, secret_sealed FROM sync_links WHERE board_id = ?")
            .bind(board)
            .fetch_one(&s.state.store.reader)
            .await
            .expect("row");
    assert!(!token_col.unwrap_or_default().contains(TOKEN));
    assert!(!secret_col.contains(&secret));
    // Another board cannot link the same repository.
    let other = s.board("OTH").await;
    let r = put_link(&s, other, base).await;
    r.expect_error(422, "validation_failed");
    assert!(r.body["error"]["details"]["repo"].is_string());
    // A private api_url is refused unless the server allows private targets.
    let strict = server(0, |c| c.allow_private_webhooks = false).await;
    let b = strict.board("PRV").await;
    let r = put_link(
        &strict,
        b,
        json!({"provider": "github", "repo": REPO, "api_url": remote.base, "token": TOKEN}),
    )
    .await;
    r.expect_error(422, "validation_failed");
    assert!(
        r.body["error"]["details"]["api_url"].is_string(),
        "{}",
        r.body
    );
    // "sync" on POST /api/boards: checked before the board exists.
    let refused = s
        .post(&s.admin, "/api/boards", json!({"name": "New", "key": "NEWB", "sync": {"provider": "github", "repo": "acme/other", "api_url": remote.base, "token": "ghp_bad"}}))
        .await;
    refused.expect_error(422, "validation_failed");
    let boards = s.get(&s.admin, "/api/boards").await.expect(200);
    assert!(
        !boards.to_string().contains("NEWB"),
        "a refused link created the board"
    );
    let second = Remote::start("acme/other").await;
    let created = s
        .post(&s.admin, "/api/boards", json!({"name": "New", "key": "NEWB", "sync": {"provider": "github", "repo": "acme/other", "api_url": second.base, "token": TOKEN, "import": "none"}}))
        .await
        .expect(201);
    let id = created["id"].as_i64().expect("id");
    let link = s
        .get(&s.admin, &format!("/api/boards/{id}/sync"))
        .await
        .expect(200);
    assert_eq!(link["repo"], "acme/other");
    // A PUT without a token keeps the link's own token (pause and resume).
    let paused = put_link(&s, id, json!({"provider": "github", "repo": "acme/other", "api_url": second.base, "enabled": false})).await.expect(200);
    assert_eq!(paused["state"], "off");
    let resumed = put_link(&s, id, json!({"provider": "github", "repo": "acme/other", "api_url": second.base, "import": "none"})).await.expect(200);
    assert_eq!(resumed["state"], "ok");
}

#[tokio::test]
async fn every_field_mirrors_out_in_order_with_one_issue_per_item() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("OUT").await;
    link_github(&s, board, &remote, "none").await;
    let item = s
        .item_with(
            board,
            json!({"title": "Fix login", "body": "Steps...", "labels": ["ui"], "kind": "defect"}),
        )
        .await;
    eventually(10, "issue created", || async {
        remote_number(&s, item).await.is_some()
    })
    .await;
    let number = remote_number(&s, item).await.expect("number");
    let issue = remote.lock().issues[&number].clone();
    assert_eq!(issue.title, "Fix login");
    assert!(issue.body.starts_with("Steps..."));
    assert!(
        issue
            .body
            .contains(&format!("https://board.example/items/{item}")),
        "{}",
        issue.body
    );
    assert_eq!(issue.labels, vec!["bug", "status:backlog", "ui"]);
    let view = s.item_json(item).await;
    assert_eq!(view["sync"]["provider"], "github");
    assert_eq!(
        view["sync"]["url"],
        format!("https://github.com/{REPO}/issues/{number}")
    );

    // Edits: only what changed is sent.
    s.patch(
        &s.admin,
        &format!("/api/items/{item}"),
        json!({"title": "Fix login on Safari", "labels": ["ui", "p1"]}),
    )
    .await
    .expect(200);
    eventually(10, "title mirrored", || async {
        remote.lock().issues[&number].title == "Fix login on Safari"
    })
    .await;
    let last = remote
        .lock()
        .mutations()
        .last()
        .map(|r| r.body.clone())
        .unwrap_or_default();
    let sent: Value = serde_json::from_str(&last).expect("json");
    assert!(
        sent.get("body").is_none(),
        "unchanged body was sent: {sent}"
    );
    assert_eq!(
        remote.lock().issues[&number].labels,
        vec!["bug", "p1", "status:backlog", "ui"]
    );

    // The holder shows while claimed; status follows the lane.
    let human = s.human("dana").await;
    s.post(
        &human,
        &format!("/api/items/{item}/claim"),
        json!({"start": true}),
    )
    .await
    .expect(200);
    eventually(10, "holder and status mirrored", || async {
        let i = remote.lock().issues[&number].clone();
        i.body.contains("claimed by dana") && i.labels.contains(&"status:in_progress".to_owned())
    })
    .await;
    // Comments mirror out once.
    s.post(
        &human,
        &format!("/api/items/{item}/comments"),
        json!({"body": "Found the cause"}),
    )
    .await
    .expect(201);
    eventually(10, "comment mirrored", || async {
        remote
            .lock()
            .comments
            .iter()
            .any(|c| c.body.starts_with("Found the cause"))
    })
    .await;
    // Done closes the issue as completed.
    s.post(
        &human,
        &format!("/api/items/{item}/move"),
        json!({"status": "done"}),
    )
    .await
    .expect(200);
    eventually(10, "issue closed", || async {
        remote.lock().issues[&number].closed
    })
    .await;
    eventually(10, "synced", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    {
        let r = remote.lock();
        assert_eq!(r.count("create_issue"), 1);
        assert_eq!(r.issues.len(), 1);
        assert_eq!(r.comments.len(), 1);
        assert!(
            !r.issues[&number]
                .labels
                .iter()
                .any(|l| l.starts_with("status:"))
        );
    }
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("taskharbor_sync_pushes_total{outcome=\"created\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("taskharbor_sync_queue_depth"));
}

#[tokio::test]
async fn an_unknown_outcome_create_is_found_by_its_marker_never_duplicated() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("DUP").await;
    link_github(&s, board, &remote, "none").await;
    // 1: applied, then a 502; 2: applied, then the connection drops;
    // 3: a 500 that did not apply; 4: rate limited.
    remote.fail_next("create_issue", Fault::ApplyThenStatus(502));
    let a = s.item_with(board, json!({"title": "A"})).await;
    eventually(20, "A linked", || async {
        remote_number(&s, a).await.is_some()
    })
    .await;
    remote.fail_next("create_issue", Fault::ApplyThenDrop);
    let b = s.item_with(board, json!({"title": "B"})).await;
    eventually(20, "B linked", || async {
        remote_number(&s, b).await.is_some()
    })
    .await;
    remote.fail_next("create_issue", Fault::Status(500));
    let c = s.item_with(board, json!({"title": "C"})).await;
    eventually(20, "C linked", || async {
        remote_number(&s, c).await.is_some()
    })
    .await;
    let titles: Vec<String> = remote.live_issues().into_iter().map(|i| i.title).collect();
    assert_eq!(titles, vec!["A", "B", "C"], "exactly one issue per item");
    let r = remote.lock();
    // A and B were created once and then found by marker; C was retried.
    assert_eq!(r.count("create_issue"), 4);
    assert!(
        r.count("list_issues") >= 2,
        "unknown outcomes are resolved by looking first"
    );
}

#[tokio::test]
async fn rate_limits_are_obeyed_and_mutations_paced() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |c| c.sync_min_interval_ms = 300).await;
    let board = s.board("RAT").await;
    link_github(&s, board, &remote, "none").await;
    remote.fail_next("create_issue", Fault::RateLimit(2));
    let first = s.item_with(board, json!({"title": "one"})).await;
    eventually(10, "rate limit seen", || async {
        s.get(&s.admin, &format!("/api/boards/{board}/sync"))
            .await
            .body["rate_limited_until"]
            .is_string()
    })
    .await;
    for n in 0..3 {
        s.item_with(board, json!({"title": format!("more {n}")}))
            .await;
    }
    eventually(20, "all created", || async {
        remote.live_issues().len() == 4
    })
    .await;
    assert!(remote_number(&s, first).await.is_some());
    // A 429 with Retry-After holds the next edit back too.
    eventually(10, "quiet", || async {
        s.item_json(first).await["sync"]["state"] == "synced"
    })
    .await;
    remote.fail_next("update_issue", Fault::RetryAfter(1));
    s.patch(
        &s.admin,
        &format!("/api/items/{first}"),
        json!({"title": "one, edited"}),
    )
    .await
    .expect(200);
    eventually(10, "edit mirrored after the wait", || async {
        remote
            .live_issues()
            .iter()
            .any(|i| i.title == "one, edited")
    })
    .await;
    {
        let r = remote.lock();
        assert_eq!(
            r.requests_while_blocked, 0,
            "a request was sent before the reset"
        );
        let times: Vec<_> = r.mutations().iter().map(|m| m.at).collect();
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(gap >= Duration::from_millis(280), "mutations {gap:?} apart");
        }
    }
    // The waits are counted on /metrics (issue 10, "Surfaces").
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let waits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("taskharbor_sync_rate_limit_waits_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(waits >= 3.0, "rate-limit waits counted: {waits}");
    assert!(
        metrics.contains("taskharbor_sync_pushes_total{outcome=\"rate_limited\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn signed_webhooks_apply_once_and_bad_signatures_change_nothing() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("HOK").await;
    let secret = link_github(&s, board, &remote, "none").await["webhook_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let item = s.item_with(board, json!({"title": "Original"})).await;
    eventually(10, "linked", || async {
        remote_number(&s, item).await.is_some()
    })
    .await;
    eventually(10, "synced", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    let number = remote_number(&s, item).await.expect("number");
    remote
        .lock()
        .edit(number, |i| i.title = "Edited on GitHub".into());
    let payload = issues_payload("edited", number, "octocat");
    let body = payload.to_string();
    // Missing and wrong signatures: 401, nothing stored.
    let missing = s
        .http
        .post(s.url(&format!("/hooks/github/{board}")))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-1")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 401);
    let wrong = s
        .http
        .post(s.url(&format!("/hooks/github/{board}")))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-1")
        .header("x-hub-signature-256", sign("not-the-secret", &body))
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_inbox")
        .fetch_one(&s.state.store.reader)
        .await
        .expect("count");
    assert_eq!(stored, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.item_json(item).await["title"], "Original");

    let started = Instant::now();
    assert_eq!(
        deliver(&s, board, "issues", &payload, &secret, "d-1").await,
        202
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered within a second"
    );
    assert_eq!(
        deliver(&s, board, "issues", &payload, &secret, "d-1").await,
        200,
        "redelivery"
    );
    eventually(10, "edit applied", || async {
        s.item_json(item).await["title"] == "Edited on GitHub"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = s
        .get(&s.admin, &format!("/api/items/{item}/events"))
        .await
        .expect(200);
    let updates: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "item.updated")
        .collect();
    assert_eq!(updates.len(), 1, "the redelivery changed nothing twice");
    assert_eq!(updates[0]["data"]["via"], "github");
    assert_eq!(updates[0]["data"]["remote_user"], "octocat");
    // Echo: our own later push coming back changes nothing and sends nothing.
    let before = remote.lock().mutations().len();
    assert_eq!(
        deliver(&s, board, "issues", &payload, &secret, "d-2").await,
        202
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(remote.lock().mutations().len(), before, "no loop");
    // A rotated secret: the old one still works (24 h), the new one too.
    let rotated = s
        .post(
            &s.admin,
            &format!("/api/boards/{board}/sync/rotate-secret"),
            json!({}),
        )
        .await
        .expect(200);
    let new_secret = rotated["webhook_secret"].as_str().expect("new secret");
    assert_ne!(new_secret, secret);
    assert_eq!(
        deliver(&s, board, "issues", &payload, &secret, "d-3").await,
        202
    );
    assert_eq!(
        deliver(&s, board, "issues", &payload, new_secret, "d-4").await,
        202
    );
    // Inbound outcomes are counted on /metrics (issue 10, "Surfaces").
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for outcome in ["accepted", "duplicate", "unauthorized", "applied"] {
        assert!(
            metrics.contains(&format!(
                "taskharbor_sync_inbound_total{{outcome=\"{outcome}\"}}"
            )),
            "inbound {outcome} missing: {metrics}"
        );
    }
}

#[tokio::test]
async fn inbound_comments_close_reopen_and_new_issues_arrive_through_the_commands() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("INB").await;
    let secret = link_github(&s, board, &remote, "none").await["webhook_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let item = s
        .item_with(board, json!({"title": "Ship it", "labels": ["x"]}))
        .await;
    eventually(10, "linked", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    let number = remote_number(&s, item).await.expect("number");
    // Labels, body and close from GitHub.
    remote.lock().edit(number, |i| {
        i.labels.push("y".into());
        i.body = format!(
            "New description\n\n{}",
            i.body
                .split_once("---\n")
                .map(|(_, f)| format!("---\n{f}"))
                .unwrap_or_default()
        );
        i.closed = true;
    });
    deliver(
        &s,
        board,
        "issues",
        &issues_payload("closed", number, "octocat"),
        &secret,
        "c-1",
    )
    .await;
    eventually(10, "closed on board", || async {
        s.item_json(item).await["status"] == "done"
    })
    .await;
    let view = s.item_json(item).await;
    assert_eq!(view["labels"], json!(["x", "y"]));
    assert_eq!(view["body"], "New description");
    remote.lock().edit(number, |i| i.closed = false);
    deliver(
        &s,
        board,
        "issues",
        &issues_payload("reopened", number, "octocat"),
        &secret,
        "c-2",
    )
    .await;
    eventually(10, "reopened to backlog", || async {
        s.item_json(item).await["status"] == "backlog"
    })
    .await;
    // A comment from GitHub arrives once; our own mirrored comments do not come back.
    let cid = remote.lock().add_comment(number, "From GitHub", "octocat");
    let payload = comment_payload(number, cid, "From GitHub", "octocat");
    deliver(&s, board, "issue_comment", &payload, &secret, "c-3").await;
    deliver(&s, board, "issue_comment", &payload, &secret, "c-3b").await;
    eventually(10, "comment imported", || async {
        let c = s
            .get(&s.admin, &format!("/api/items/{item}/comments"))
            .await
            .expect(200);
        c["comments"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["body"] == "From GitHub"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let comments = s
        .get(&s.admin, &format!("/api/items/{item}/comments"))
        .await
        .expect(200);
    let list = comments["comments"].as_array().expect("list");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["author"]["name"], "github:octocat");
    assert_eq!(
        remote.lock().comments.len(),
        1,
        "the inbound comment was not pushed back"
    );
    // A new issue becomes an item that is not agent-ready.
    let fresh = remote.lock().add_issue(
        "Reported on GitHub",
        "It breaks",
        &["bug"],
        "reporter",
        false,
    );
    deliver(
        &s,
        board,
        "issues",
        &issues_payload("opened", fresh, "reporter"),
        &secret,
        "c-4",
    )
    .await;
    eventually(10, "imported", || async {
        let items = s
            .get(&s.admin, &format!("/api/boards/{board}/items"))
            .await
            .expect(200);
        items["items"]
            .as_array()
            .is_some_and(|l| l.iter().any(|i| i["title"] == "Reported on GitHub"))
    })
    .await;
    let items = s
        .get(&s.admin, &format!("/api/boards/{board}/items"))
        .await
        .expect(200);
    let imported = items["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["title"] == "Reported on GitHub")
        .expect("item")
        .clone();
    assert_eq!(imported["agent_ready"], false);
    assert_eq!(imported["kind"], "defect");
    assert_eq!(imported["sync"]["number"], fresh);
    // Deleted on GitHub: the item stays, unlinked.
    if let Some(i) = remote.lock().issues.get_mut(&number) {
        i.deleted = true;
    }
    deliver(
        &s,
        board,
        "issues",
        &issues_payload("deleted", number, "octocat"),
        &secret,
        "c-5",
    )
    .await;
    eventually(10, "unlinked", || async {
        s.item_json(item).await["sync"].is_null()
    })
    .await;
    assert_eq!(s.item_json(item).await["title"], "Ship it");
}

#[tokio::test]
async fn a_same_field_conflict_keeps_the_board_value_and_the_remote_converges() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("CON").await;
    let secret = link_github(&s, board, &remote, "none").await["webhook_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let item = s.item_with(board, json!({"title": "Base"})).await;
    eventually(10, "synced", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    let number = remote_number(&s, item).await.expect("number");
    // Both sides change the title; the board's change cannot go out yet.
    remote.block_for(2);
    s.patch(
        &s.admin,
        &format!("/api/items/{item}"),
        json!({"title": "Board title"}),
    )
    .await
    .expect(200);
    remote
        .lock()
        .edit(number, |i| i.title = "Remote title".into());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    deliver(
        &s,
        board,
        "issues",
        &issues_payload("edited", number, "octocat"),
        &secret,
        "x-1",
    )
    .await;
    eventually(15, "remote converges to the board", || async {
        remote.lock().issues[&number].title == "Board title"
    })
    .await;
    assert_eq!(s.item_json(item).await["title"], "Board title");
}

#[tokio::test]
async fn import_pages_through_issues_skips_pull_requests_and_resumes() {
    let remote = Remote::start(REPO).await;
    {
        let mut r = remote.lock();
        for n in 0..230 {
            let pr = n % 23 == 0;
            let number = r.add_issue(&format!("Existing {n}"), "old", &[], "someone", pr);
            if n % 5 == 0 {
                r.edit(number, |i| i.closed = true);
            }
        }
    }
    // Page 2 fails once: the import resumes from where it was.
    remote.fail_next("list_issues", Fault::Status(502));
    let s = server(0, |_| {}).await;
    let board = s.board("IMP").await;
    let link = link_github(&s, board, &remote, "open").await;
    assert_eq!(link["state"], "importing");
    let expected = remote.live_issues().iter().filter(|i| !i.closed).count();
    eventually(60, "import done", || async {
        s.get(&s.admin, &format!("/api/boards/{board}/sync"))
            .await
            .body["state"]
            == "ok"
    })
    .await;
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .get(
                &s.admin,
                &format!("/api/boards/{board}/items?limit=100{cursor}"),
            )
            .await
            .expect(200);
        let items = page["items"].as_array().expect("items").clone();
        all.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        all.len(),
        expected,
        "each open issue once, no PRs, no closed ones"
    );
    assert!(all.iter().all(|i| i["agent_ready"] == false));
    let mut numbers: Vec<i64> = all
        .iter()
        .filter_map(|i| i["sync"]["number"].as_i64())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), expected);
    assert_eq!(
        remote.lock().count("create_issue"),
        0,
        "imported issues are not created again"
    );
}

#[tokio::test]
async fn with_sync_off_nothing_goes_out_and_hooks_are_404() {
    let remote = Remote::start(REPO).await;
    let s = server(100, |c| c.sync = taskharbor::config::Switch::Off).await;
    let board = s.board("OFF").await;
    let link = s
        .send(
            Some(&s.admin),
            Method::PUT,
            &format!("/api/boards/{board}/sync"),
            Some(
                json!({"provider": "github", "repo": REPO, "api_url": remote.base, "token": TOKEN}),
            ),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(link["state"], "off");
    s.item_with(board, json!({"title": "quiet"})).await;
    let r = s
        .http
        .post(s.url(&format!("/hooks/github/{board}")))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .post(s.url(&format!("/hooks/gitlab/{board}")))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(remote.lock().requests.len(), 0, "zero outbound requests");
}

#[tokio::test]
async fn unlinking_keeps_items_and_their_references_and_stops_mirroring() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("UNL").await;
    link_github(&s, board, &remote, "none").await;
    let item = s.item_with(board, json!({"title": "Keep me"})).await;
    eventually(10, "synced", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    let number = remote_number(&s, item).await;
    assert_eq!(
        s.delete(&s.admin, &format!("/api/boards/{board}/sync"))
            .await
            .status,
        204
    );
    s.get(&s.admin, &format!("/api/boards/{board}/sync"))
        .await
        .expect_error(404, "not_found");
    let before = remote.lock().requests.len();
    s.patch(
        &s.admin,
        &format!("/api/items/{item}"),
        json!({"title": "Changed after unlink"}),
    )
    .await
    .expect(200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(remote.lock().requests.len(), before);
    let view = s.item_json(item).await;
    assert_eq!(view["title"], "Changed after unlink");
    assert_eq!(
        remote_number(&s, item).await,
        number,
        "the remote reference stays"
    );
    // Linking again resumes: the same issue is updated, no second one.
    link_github(&s, board, &remote, "none").await;
    eventually(10, "resumed", || async {
        remote
            .lock()
            .issues
            .values()
            .any(|i| i.title == "Changed after unlink")
    })
    .await;
    assert_eq!(remote.lock().issues.len(), 1);
}

#[tokio::test]
async fn an_import_interrupted_by_a_restart_resumes_without_duplicates() {
    let remote = Remote::start(REPO).await;
    {
        let mut r = remote.lock();
        for n in 0..260 {
            r.add_issue(&format!("Backlog issue {n}"), "", &[], "someone", false);
        }
    }
    // Page 2 is refused with a 5-second rate limit: the restart lands
    // mid-import, and the wait must survive it.
    remote.fail_next("list_issues", Fault::Pass);
    remote.fail_next("list_issues", Fault::RateLimit(5));
    let s = server(0, |_| {}).await;
    let admin = s.admin.clone();
    let board = s.board("RES").await;
    link_github(&s, board, &remote, "all").await;
    eventually(30, "first page imported, second refused", || async {
        s.get(&s.admin, &format!("/api/boards/{board}/sync"))
            .await
            .body["rate_limited_until"]
            .is_string()
    })
    .await;
    let (done, next): (bool, Option<String>) =
        sqlx::query_as("SELECT import_done, import_next FROM sync_links WHERE board_id = ?")
            .bind(board)
            .fetch_one(&s.state.store.reader)
            .await
            .expect("link");
    assert!(!done && next.is_some(), "stopped mid-import");
    let dir = s.stop().await;
    let s = crate::support::TestServer::start_in(dir, Some(admin), |c| {
        c.allow_private_webhooks = true;
        c.sync_min_interval_ms = 0;
        c.sync_poll_interval_ms = 3_600_000;
    })
    .await;
    eventually(60, "import finished after the restart", || async {
        s.get(&s.admin, &format!("/api/boards/{board}/sync"))
            .await
            .body["state"]
            == "ok"
    })
    .await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE board_id = ?")
        .bind(board)
        .fetch_one(&s.state.store.reader)
        .await
        .expect("count");
    assert_eq!(count, 260, "every issue imported exactly once");
    let mapped: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT number) FROM sync_items WHERE board_id = ?")
            .bind(board)
            .fetch_one(&s.state.store.reader)
            .await
            .expect("count");
    assert_eq!(mapped, 260);
    assert_eq!(remote.lock().count("create_issue"), 0);
    assert_eq!(
        remote.lock().requests_while_blocked,
        0,
        "the restart waited for the reset"
    );
}
