//! Wake-on-queue benchmark: how long from the API call that makes an item
//! agent-ready to the signed `item.agent-ready` webhook arriving at a
//! loopback receiver, and how many deliveries per second reach a fast
//! receiver.
//!
//! `cargo bench -p tenant-server --bench wake [-- ITERATIONS BURST]`
//!
//! Starts the real release binary (`--allow-private-webhooks`, since the
//! receiver is on loopback) on a fresh data dir, and an in-process axum
//! receiver that timestamps each delivery on arrival.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "th_WakeBenchAdminToken_abcdefghijklmnopqrstuvwxyz";

type Arrivals = Arc<Mutex<Vec<(Instant, String)>>>;

async fn receive(
    State(arrivals): State<Arrivals>,
    headers: HeaderMap,
    _body: Bytes,
) -> &'static str {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    arrivals.lock().expect("lock").push((Instant::now(), id));
    "ok"
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn wait_for(arrivals: &Arrivals, n: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if arrivals.lock().expect("lock").len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    false
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let iterations = args.first().copied().unwrap_or(300);
    let burst = args.get(1).copied().unwrap_or(2000);

    let arrivals: Arrivals = Arc::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let receiver = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });

    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log",
            "warn,taskharbor=info",
            "--allow-private-webhooks",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("TASKHARBOR_BOOTSTRAP_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn taskharbor");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Ok(log) = serde_json::from_str::<Value>(&line)
            && let Some(addr) = log["fields"]["addr"].as_str()
        {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };

    let board: Value = post("/api/boards".into(), json!({"name": "Wake", "key": "WAKE"}))
        .await
        .expect("board")
        .json()
        .await
        .expect("json");
    let board = board["id"].as_i64().expect("board id");
    post(
        format!("/api/boards/{board}/webhooks"),
        json!({"url": receiver, "events": ["item.agent-ready"]}),
    )
    .await
    .expect("webhook");

    // Latency: one item at a time, from sending the request to arrival.
    let mut wake_ms = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let sent = Instant::now();
        let response = post(
            format!("/api/boards/{board}/items"),
            json!({"title": format!("wake {n}"), "agent_ready": true}),
        )
        .await
        .expect("create");
        assert!(response.status().is_success());
        assert!(
            wait_for(&arrivals, n + 1, Duration::from_secs(10)).await,
            "delivery {n} never arrived"
        );
        let arrived = arrivals.lock().expect("lock")[n].0;
        wake_ms.push(arrived.duration_since(sent).as_secs_f64() * 1000.0);
    }
    wake_ms.sort_by(f64::total_cmp);

    // Throughput: a burst of items from 8 concurrent clients, then the
    // time until every webhook has arrived.
    let before = arrivals.lock().expect("lock").len();
    let started = Instant::now();
    let per_client = burst / 8;
    let clients = (0..8).map(|c| {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            for n in 0..per_client {
                http.post(format!("{base}/api/boards/{board}/items"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"title": format!("burst {c}-{n}"), "agent_ready": true}))
                    .send()
                    .await
                    .expect("create");
            }
        })
    });
    for client in clients.collect::<Vec<_>>() {
        client.await.expect("client");
    }
    let created_in = started.elapsed();
    let total = per_client * 8;
    assert!(
        wait_for(&arrivals, before + total, Duration::from_secs(120)).await,
        "burst not delivered"
    );
    let delivered_in = started.elapsed();
    let ids: std::collections::HashSet<String> = arrivals
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, id)| id.clone())
        .collect();

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    println!("## Wake-on-queue benchmark\n");
    println!(
        "Command: `cargo bench -p tenant-server --bench wake -- {iterations} {burst}`; machine: {} cores; load average at the end: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!("| measure | value |\n|---|---|");
    println!(
        "| wake latency, API call → signed webhook at the receiver ({} items, one at a time) | p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms |",
        wake_ms.len(),
        percentile(&wake_ms, 50.0),
        percentile(&wake_ms, 95.0),
        percentile(&wake_ms, 99.0),
        wake_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| burst: {total} items created by 8 clients | created in {:.2} s; all {total} webhooks delivered {:.2} s after the first request: **{:.0} deliveries/s** end to end |",
        created_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        total as f64 / delivered_in.as_secs_f64()
    );
    println!(
        "| distinct webhook-ids received vs items | {} vs {} (duplicates would mean a retry; none expected against a healthy receiver) |",
        ids.len(),
        iterations + total
    );
}
