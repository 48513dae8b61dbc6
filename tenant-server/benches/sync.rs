//! Sync benchmark (issue 10): mirror latency (board change → the request
//! arriving at the GitHub stand-in) with the limiter off, and import rate
//! and server memory while importing 5,000 issues from the stand-in.
//!
//! `cargo bench -p tenant-server --bench sync [-- CHANGES ISSUES]`
//! (needs .ci/sync-prereqs.sh: the stand-in builds its answers from
//! GitHub's OpenAPI examples).
//!
//! Runs the real release binary on a fresh data dir with
//! `TASKHARBOR_SYNC_MIN_INTERVAL_MS=0` and the stand-in in this process.
//!
//! Each figure is set against a floor measured in the same run:
//! - mirror latency against the API's own answer time for the change (its
//!   commit) plus one request sent straight to the stand-in over loopback
//!   (p50 + p50): what any mirror must at least spend;
//! - import against reading every page straight from the stand-in plus
//!   one SQLite commit per issue in-process (rusqlite, same pragmas as the
//!   server at `synchronous=NORMAL`): the data must be fetched and each
//!   imported item committed.

#[path = "../tests/api/sync/standin.rs"]
#[allow(dead_code)]
mod standin;

use serde_json::{Value, json};
use standin::{Remote, TOKEN};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "th_SyncBenchAdminToken_abcdefghijklmnopqrstuvwxyz";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let changes = args.first().copied().unwrap_or(200);
    let issues = args.get(1).copied().unwrap_or(5000);
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log",
            "warn,taskharbor=info",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("TASKHARBOR_BOOTSTRAP_TOKEN", ADMIN)
        .env("TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS", "true")
        .env("TASKHARBOR_SYNC_MIN_INTERVAL_MS", "0")
        .env("TASKHARBOR_SQLITE_SYNC", "normal")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").expect("line");
        if let Ok(log) = serde_json::from_str::<Value>(&line)
            && let Some(addr) = log["fields"]["addr"].as_str()
        {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };

    // Mirror latency.
    let remote = Remote::start("bench/latency").await;
    let board: Value = call(reqwest::Method::POST, "/api/boards", json!({"name": "Latency", "key": "LAT",
        "sync": {"provider": "github", "repo": "bench/latency", "api_url": remote.base, "token": TOKEN, "import": "none"}}))
        .await.expect("board").json().await.expect("json");
    let board = board["id"].as_i64().expect("board id");
    let item: Value = call(
        reqwest::Method::POST,
        &format!("/api/boards/{board}/items"),
        json!({"title": "latency"}),
    )
    .await
    .expect("item")
    .json()
    .await
    .expect("json");
    let item = item["id"].as_i64().expect("item id");
    while remote.lock().count("create_issue") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(changes);
    let mut answered = Vec::with_capacity(changes);
    for n in 0..changes {
        let before = remote.lock().count("update_issue");
        let started = Instant::now();
        call(
            reqwest::Method::PATCH,
            &format!("/api/items/{item}"),
            json!({"title": format!("latency {n}")}),
        )
        .await
        .expect("patch");
        answered.push(started.elapsed().as_secs_f64() * 1000.0);
        let deadline = started + Duration::from_secs(10);
        loop {
            let arrived = {
                let r = remote.lock();
                (r.count("update_issue") > before).then(|| {
                    r.requests
                        .iter()
                        .rev()
                        .find(|q| q.kind == "update_issue")
                        .map(|q| q.at)
                })
            };
            if let Some(Some(at)) = arrived {
                samples.push(at.duration_since(started).as_secs_f64() * 1000.0);
                break;
            }
            assert!(Instant::now() < deadline, "change {n} never arrived");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    samples.sort_by(f64::total_cmp);
    answered.sort_by(f64::total_cmp);
    // The floor's second part: the same PATCH sent straight to the stand-in.
    // The one item of this repository is its issue #1.
    let number = 1;
    let mut direct = Vec::with_capacity(changes);
    for n in 0..changes {
        let started = Instant::now();
        let resp = http
            .patch(format!(
                "{}/repos/bench/latency/issues/{number}",
                remote.base
            ))
            .bearer_auth(TOKEN)
            .json(&json!({"title": format!("direct {n}")}))
            .send()
            .await
            .expect("direct patch");
        assert!(
            resp.status().is_success(),
            "direct patch: {}",
            resp.status()
        );
        let _ = resp.bytes().await;
        direct.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    direct.sort_by(f64::total_cmp);
    let floor = percentile(&answered, 50.0) + percentile(&direct, 50.0);
    println!(
        "mirror latency (API change -> provider request), {} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         floor: API answer p50 {:.2} ms + direct request to the stand-in p50 {:.2} ms = {:.2} ms; ratio (p50) {:.1}x",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(f64::NAN),
        percentile(&answered, 50.0),
        percentile(&direct, 50.0),
        floor,
        percentile(&samples, 50.0) / floor
    );

    // Import.
    let source = Remote::start("bench/import").await;
    {
        let mut r = source.lock();
        for n in 0..issues {
            let number = r.add_issue(
                &format!("Imported issue {n}"),
                "Body of an existing issue",
                &["imported"],
                "someone",
                false,
            );
            if n % 4 == 0 {
                r.edit(number, |i| i.closed = true);
            }
        }
    }
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let board: Value = call(reqwest::Method::POST, "/api/boards", json!({"name": "Import", "key": "IMP",
        "sync": {"provider": "github", "repo": "bench/import", "api_url": source.base, "token": TOKEN, "import": "all"}}))
        .await.expect("board").json().await.expect("json");
    let board = board["id"].as_i64().expect("board id");
    let mut peak = rss_before;
    loop {
        peak = peak.max(rss_kib(pid));
        let link: Value = http
            .get(format!("{base}/api/boards/{board}/sync"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("link")
            .json()
            .await
            .expect("json");
        if link["state"] != "importing" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "import did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (fetch, commits) = import_floor(&http, &source.base, issues).await;
    println!(
        "import of {issues} issues (all states, 100 a page): {elapsed:.1} s, {:.0} issues/s; server RSS {} MiB before, peak {} MiB during; \
         floor: the pages straight from the stand-in {fetch:.2} s + {issues} in-process commits {commits:.2} s = {:.2} s ({:.0} issues/s); ratio {:.1}x",
        issues as f64 / elapsed,
        rss_before / 1024,
        peak / 1024,
        fetch + commits,
        issues as f64 / (fetch + commits),
        elapsed / (fetch + commits)
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads every page of the import straight from the stand-in (as the
/// server's import does: `state=all`, 100 a page), then commits `issues`
/// rows one transaction each in a fresh SQLite file with the server's
/// pragmas at `synchronous=NORMAL`. Returns both times in seconds.
async fn import_floor(http: &reqwest::Client, base: &str, issues: usize) -> (f64, f64) {
    let started = Instant::now();
    let mut fetched = 0;
    for page in 1.. {
        let list: Vec<Value> = http
            .get(format!(
                "{base}/repos/bench/import/issues?state=all&per_page=100&page={page}"
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("page json");
        if list.is_empty() {
            break;
        }
        fetched += list.len();
    }
    assert!(fetched >= issues, "the stand-in listed {fetched} issues");
    let fetch = started.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().expect("dir");
    let conn = rusqlite::Connection::open(dir.path().join("floor.db")).expect("db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, status TEXT NOT NULL)",
    )
    .expect("table");
    let started = Instant::now();
    for n in 0..issues {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        conn.prepare_cached("INSERT INTO items (title, body, status) VALUES (?, ?, ?)")
            .expect("prepare")
            .execute(rusqlite::params![
                format!("Imported issue {n}"),
                "Body of an existing issue",
                "backlog"
            ])
            .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
    }
    (fetch, started.elapsed().as_secs_f64())
}
