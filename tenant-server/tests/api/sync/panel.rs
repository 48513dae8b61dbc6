//! The board settings' sync panel in headless Chromium
//! (tests/e2e/sync_panel.mjs): link from the form against the GitHub
//! stand-in, pause (pending grows, the stand-in hears nothing), resume
//! (drains; the stored token was kept), rotate, unlink.

use super::standin::{Remote, TOKEN};
use super::*;
use crate::web::{BROWSER_TURN, PASSWORD, e2e_paths, first_admin};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn the_sync_panel_links_pauses_resumes_rotates_and_unlinks_in_headless_chromium() {
    let _turn = BROWSER_TURN.lock().await;
    let (_, node_dir, artifacts) = e2e_paths();
    let artifacts = artifacts.join("sync");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run .ci/web-prereqs.sh"
    );
    assert!(
        node_dir
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is missing in {}: run .ci/web-prereqs.sh",
        node_dir.display()
    );
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("PNL").await;
    first_admin(&s).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/sync_panel.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(s.url(""))
        .arg(board.to_string())
        .arg(&artifacts)
        .env("TASKHARBOR_E2E_NODE_DIR", &node_dir)
        .env("E2E_USER", "ada")
        .env("E2E_PASSWORD", PASSWORD)
        .env("E2E_API_URL", &remote.base)
        .env("E2E_REPO", REPO)
        .env("E2E_TOKEN", TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is missing: install Node.js 18+ (see .ci/web-prereqs.sh)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut result = Value::Null;
    let mut first = 0;
    let mut sent_before_pause = 0;
    let run = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            println!("e2e: {line}");
            match line.as_str() {
                "LINKED" => {
                    first = s
                        .item_with(board, json!({"title": "Linked from the form"}))
                        .await;
                    eventually(10, "first item mirrored", || async {
                        s.item_json(first).await["sync"]["state"] == "synced"
                    })
                    .await;
                }
                "PAUSED" => {
                    sent_before_pause = remote.lock().requests.len();
                    s.item_with(board, json!({"title": "Made while paused 1"}))
                        .await;
                    s.item_with(board, json!({"title": "Made while paused 2"}))
                        .await;
                    s.patch(
                        &s.admin,
                        &format!("/api/items/{first}"),
                        json!({"title": "Renamed while paused"}),
                    )
                    .await
                    .expect(200);
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    assert_eq!(
                        remote.lock().requests.len(),
                        sent_before_pause,
                        "a paused link sent a request"
                    );
                }
                "RESUMED" => {
                    eventually(15, "drained after resume", || async {
                        let titles: Vec<String> = remote
                            .live_issues()
                            .iter()
                            .map(|i| i.title.clone())
                            .collect();
                        let link = s
                            .get(&s.admin, &format!("/api/boards/{board}/sync"))
                            .await
                            .expect(200);
                        titles.len() == 3
                            && titles.iter().any(|t| t == "Renamed while paused")
                            && link["pending"] == 0
                    })
                    .await;
                }
                _ => {
                    if let Some(json) = line.strip_prefix("RESULT ") {
                        result = serde_json::from_str(json).unwrap_or(Value::Null);
                    }
                    continue;
                }
            }
            stdin.write_all(b"ok\n").await.expect("stdin");
            stdin.flush().await.expect("flush");
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run took over 3 minutes");
    let status = child.wait().await.expect("node exit");
    assert!(
        status.success() && result["ok"] == true,
        "sync panel scenario failed ({status}): {result}; screenshots in {}",
        artifacts.display()
    );
    // Resuming re-verified the link with the stored token (the page never had it).
    assert!(remote.lock().requests.len() > sent_before_pause);
    // Unlinked: the link is gone, the items and their issue references stay.
    s.get(&s.admin, &format!("/api/boards/{board}/sync"))
        .await
        .expect_error(404, "not_found");
    assert_eq!(remote_number(&s, first).await, Some(1));
    assert_eq!(remote.live_issues().len(), 3, "no issue was duplicated");
}

/// The rule the panel's pause and resume rely on, over the API alone.
#[tokio::test]
async fn a_put_without_token_keeps_the_stored_one_and_a_paused_link_queues_without_sending() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let board = s.board("TKN").await;
    link_github(&s, board, &remote, "none").await;
    let put = |body: Value| {
        let s = &s;
        async move {
            s.send(
                Some(&s.admin),
                reqwest::Method::PUT,
                &format!("/api/boards/{board}/sync"),
                Some(body),
                &[],
            )
            .await
        }
    };
    let again =
        json!({"provider": "github", "repo": REPO, "api_url": remote.base, "import": "none"});
    let mut paused = again.clone();
    paused["enabled"] = json!(false);
    let link = put(paused).await.expect(200);
    assert_eq!(link["enabled"], false);
    assert_eq!(link["state"], "off");
    assert!(link.get("webhook_secret").is_none(), "not shown again");
    let sent = remote.lock().requests.len();
    let item = s.item_with(board, json!({"title": "Waits"})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let link = s
        .get(&s.admin, &format!("/api/boards/{board}/sync"))
        .await
        .expect(200);
    assert_eq!(link["pending"], 1, "the paused link keeps its outbox");
    assert_eq!(
        remote.lock().requests.len(),
        sent,
        "nothing sent while paused"
    );
    // Resuming without a token: checked with the stored one (the server has none).
    let link = put(again).await.expect(200);
    assert_eq!(link["enabled"], true);
    eventually(10, "drained", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    // Another provider does not inherit it.
    let r = put(json!({"provider": "gitlab", "repo": REPO, "api_url": remote.gitlab_url(), "import": "none"})).await;
    r.expect_error(422, "validation_failed");
    assert!(
        r.body["error"]["details"]["token"].is_string(),
        "{}",
        r.body
    );
}
