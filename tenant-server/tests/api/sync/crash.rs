//! The real binary killed with SIGKILL after GitHub applied a create but
//! before the server recorded it: on restart, the marker search finds the
//! issue and no second one is created.

use super::standin::{Fault, Remote, TOKEN};
use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const ADMIN: &str = "th_SyncCrashTestAdminToken_abcdefghijklmnopqrstuvwxyz";

fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log",
            "info",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("TASKHARBOR_BOOTSTRAP_TOKEN", ADMIN)
        .env("TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS", "true")
        .env("TASKHARBOR_SYNC_MIN_INTERVAL_MS", "0")
        .env_remove("RUST_LOG")
        .env_remove("TASKHARBOR_SYNC")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn taskharbor");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let Some(Ok(line)) = lines.next() else {
            panic!("server exited")
        };
        if let Ok(log) = serde_json::from_str::<Value>(&line)
            && let Some(addr) = log["fields"]["addr"].as_str()
        {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn kill_9_between_send_and_commit_never_yields_a_second_issue() {
    let remote = Remote::start(REPO).await;
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::new();
    let (mut child, base) = start(dir.path());
    let board: Value = http
        .post(format!("{base}/api/boards"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Crash", "key": "CRS"}))
        .send()
        .await
        .expect("board")
        .json()
        .await
        .expect("json");
    let board = board["id"].as_i64().expect("id");
    let link = http.put(format!("{base}/api/boards/{board}/sync")).bearer_auth(ADMIN)
        .json(&json!({"provider": "github", "repo": REPO, "api_url": remote.base, "token": TOKEN, "import": "none"}))
        .send().await.expect("link");
    assert_eq!(link.status(), 200);
    let (applied_tx, applied) = tokio::sync::oneshot::channel();
    remote.fail_next("create_issue", Fault::ApplyThenHang(applied_tx));
    let item: Value = http
        .post(format!("{base}/api/boards/{board}/items"))
        .bearer_auth(ADMIN)
        .json(&json!({"title": "Survives a crash"}))
        .send()
        .await
        .expect("item")
        .json()
        .await
        .expect("json");
    let item = item["id"].as_i64().expect("id");
    tokio::time::timeout(Duration::from_secs(20), applied)
        .await
        .expect("create reached GitHub")
        .expect("signal");
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert_eq!(
        remote.live_issues().len(),
        1,
        "GitHub has the issue; the server never heard back"
    );

    let (mut child, base) = start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: Value = http
            .get(format!("{base}/api/items/{item}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if view["sync"]["state"] == "synced" {
            assert_eq!(view["sync"]["number"], remote.live_issues()[0].number);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not resolved after restart: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let r = remote.lock();
    assert_eq!(r.issues.len(), 1, "exactly one issue");
    assert_eq!(r.count("create_issue"), 1, "no second create");
    assert!(
        r.count("list_issues") >= 1,
        "found by looking for the marker"
    );
}
