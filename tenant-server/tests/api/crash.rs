//! The real binary: `kill -9` under claim load loses nothing acknowledged;
//! SIGTERM drains and exits cleanly; the bootstrap token from the
//! environment works; `taskharbor backup` writes a usable copy.

use futures_util::future::join_all;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "th_CrashTestAdminToken_abcdefghijklmnopqrstuvwxyz";

struct Running {
    child: Child,
    base: String,
}

/// Starts `taskharbor` on a free port and waits for it to listen.
fn start(data_dir: &Path) -> Running {
    start_with(data_dir, &[])
}

fn start_with(data_dir: &Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log",
            "info",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TASKHARBOR_BOOTSTRAP_TOKEN", ADMIN)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn taskharbor");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let Some(Ok(line)) = lines.next() else {
            panic!("server exited before listening")
        };
        if let Ok(log) = serde_json::from_str::<Value>(&line)
            && let Some(addr) = log["fields"]["addr"].as_str()
        {
            break addr.to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        child,
        base: format!("http://{addr}"),
    }
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let res = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_claim_load_loses_no_acknowledged_claim_and_nothing_is_claimed_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::new();
    let mut server = start(dir.path());
    let base = server.base.clone();
    let (status, board) = call(
        &http,
        &base,
        ADMIN,
        "/api/boards",
        json!({"name": "Crash", "key": "CRASH"}),
    )
    .await
    .expect("board");
    assert_eq!(status, 201);
    let board = board["id"].as_i64().expect("id");
    http.patch(format!("{base}/api/boards/{board}"))
        .bearer_auth(ADMIN)
        .json(&json!({"claim_limit": 1000}))
        .send()
        .await
        .expect("patch");
    let total = 400;
    for n in 0..total {
        let (status, _) = call(
            &http,
            &base,
            ADMIN,
            &format!("/api/boards/{board}/items"),
            json!({"title": format!("job {n}"), "agent_ready": true}),
        )
        .await
        .expect("item");
        assert_eq!(status, 201);
    }
    let mut workers = Vec::new();
    for n in 0..8 {
        let name = format!("crash-agent-{n}");
        let (_, minted) = call(&http, &base, ADMIN, "/api/tokens", json!({"name": name, "worker": {"name": name, "kind": "agent"}, "scopes": ["queue:write"]})).await.expect("token");
        workers.push((name, minted["token"].as_str().expect("token").to_owned()));
    }
    // Claims acknowledged with a 200 before the kill: item -> worker.
    let acked: Arc<Mutex<HashMap<i64, String>>> = Arc::default();
    let load = workers.iter().map(|(name, token)| {
        let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
        async move {
            loop {
                match call(
                    &http,
                    &base,
                    token,
                    "/api/claim-next",
                    json!({"board_id": board}),
                )
                .await
                {
                    Ok((200, item)) => {
                        let id = item["id"].as_i64().expect("id");
                        let previous = acked.lock().expect("lock").insert(id, name.clone());
                        assert!(previous.is_none(), "item {id} acknowledged twice");
                    }
                    Ok((204, _)) => return,
                    Ok((status, body)) => panic!("unexpected {status}: {body}"),
                    Err(_) => return, // the server died under us
                }
            }
        }
    });
    let killer = async {
        // Kill once a quarter of the queue is acknowledged: a fixed delay
        // let a fast writer drain all of it first.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while acked.lock().expect("lock").len() < total / 4
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The writer group-commits: under this load several claims share
        // one transaction, so the kill lands among grouped commits.
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let series = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let (commands, groups) = (
            series("taskharbor_writer_commands_total"),
            series("taskharbor_writer_groups_total"),
        );
        assert!(
            commands > groups && groups > 0.0,
            "claims were group-committed ({commands} commands in {groups} groups)"
        );
        server.child.kill().expect("kill -9"); // SIGKILL
        server.child.wait().expect("reap");
    };
    tokio::join!(join_all(load), killer);
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 10,
        "the load ran before the kill ({} claims)",
        acked.len()
    );
    assert!(
        acked.len() < total,
        "the kill came before the queue drained"
    );

    let server = start(dir.path());
    let base = server.base.clone();
    for (id, worker) in &acked {
        let item = get(&http, &base, ADMIN, &format!("/api/items/{id}")).await;
        assert_eq!(
            item["claim"]["worker"]["name"].as_str(),
            Some(worker.as_str()),
            "claim on {id} survived the kill"
        );
    }
    // Drain the rest: nothing acknowledged before is handed out again.
    let mut after: Vec<i64> = Vec::new();
    for (_, token) in &workers {
        loop {
            let (status, item) = call(
                &http,
                &base,
                token,
                "/api/claim-next",
                json!({"board_id": board}),
            )
            .await
            .expect("claim");
            if status == 204 {
                break;
            }
            assert_eq!(status, 200, "{item}");
            after.push(item["id"].as_i64().expect("id"));
        }
    }
    for id in &after {
        assert!(!acked.contains_key(id), "item {id} was claimed twice");
    }
    let mut all: Vec<i64> = acked.keys().copied().chain(after.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    // Requests in flight at the kill may have committed without an answer;
    // those items are held (by their worker) and not handed out again either.
    let unanswered = total - all.len();
    assert!(
        unanswered <= workers.len(),
        "{unanswered} items neither acknowledged nor claimable"
    );
    let mut server = server;
    server.child.kill().ok();
    server.child.wait().ok();
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly_and_the_cli_mints_tokens_and_writes_backups() {
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::new();
    let mut server = start(dir.path());
    let me = get(&http, &server.base, ADMIN, "/api/me").await;
    assert_eq!(
        me["scopes"],
        json!(["admin"]),
        "TASKHARBOR_BOOTSTRAP_TOKEN became a working admin token"
    );
    let (status, _) = call(
        &http,
        &server.base,
        ADMIN,
        "/api/boards",
        json!({"name": "Term", "key": "TERM"}),
    )
    .await
    .expect("board");
    assert_eq!(status, 201);

    // A self-hoster mints a token from the command line while the server runs.
    let minted = Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "token",
            "create",
            "--name",
            "cli",
            "--worker",
            "cli-bot",
            "--kind",
            "agent",
            "--scope",
            "queue:read",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("token create");
    assert!(
        minted.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let secret = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    let cli_me = get(&http, &server.base, &secret, "/api/me").await;
    assert_eq!(cli_me["worker"]["name"], "cli-bot");
    assert_eq!(cli_me["scopes"], json!(["queue:read"]));

    let backup = dir.path().join("copy.db");
    let out = Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("backup")
        .arg(&backup)
        .env_remove("RUST_LOG")
        .output()
        .expect("backup");
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&backup).expect("backup file").len() > 0);

    let pid = server.child.id().to_string();
    let started = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let restored = tempfile::tempdir().expect("dir");
    std::fs::copy(&backup, restored.path().join("taskharbor.db")).expect("restore");
    let mut again = start(restored.path());
    let boards = get(&http, &again.base, ADMIN, "/api/boards").await;
    assert_eq!(boards["boards"][0]["key"], "TERM");
    again.child.kill().ok();
    again.child.wait().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp_when_an_endpoint_is_configured() {
    let collector = crate::receiver::Receiver::start(vec![]).await;
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::new();
    let mut server = start_with(dir.path(), &["--otlp-endpoint", &collector.base]);
    let me = get(&http, &server.base, ADMIN, "/api/me").await;
    assert_eq!(me["worker"]["name"], "admin");
    // SIGTERM flushes the batch exporter on the way out.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    assert!(server.child.wait().expect("wait").success());
    let got = collector.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/v1/traces");
    assert_eq!(got[0].header("content-type"), "application/x-protobuf");
    assert!(
        got[0].body.contains("/api/me"),
        "the request span names its route"
    );
}
