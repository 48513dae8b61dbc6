//! The dashboard benchmark (issue 14): how close do the board page, the
//! flow page and the stats endpoint get to what the data allows?
//!
//! One run, in this order:
//!
//! 1. **Seed** a fresh data dir straight into SQLite (no HTTP): a board of
//!    2,000 items over the default lanes (labels, defects, some held by
//!    agents and humans with live leases, some blocked by others), and a
//!    second board with the flow history of `fixtures/flow_history.rs`
//!    (20,000 items, 100,000 events, 90 days, 8 workers); a signed-in
//!    admin user (session row) for the pages.
//! 2. **Physical limits**, in-process on the same file with the server's
//!    pragmas (rusqlite, cached statements): the raw read of the board's
//!    rows (the columns a card shows), the raw read of the history rows the
//!    analytics replay, and the time to move the same number of bytes over
//!    loopback HTTP from a server that only copies a ready buffer (the
//!    "serialise the same bytes" floor).
//! 3. **Server**: the real release `taskharbor` binary on a loopback port:
//!    idle RSS; `GET /boards/{id}` N times; `GET /api/boards/{id}/stats`
//!    and `GET /boards/{id}/flow` N times each, once with a new event
//!    before every request (the answer has to be computed) and once
//!    repeated (whatever the server may reuse); the pages' own JS + CSS
//!    bytes; RSS after each phase and its peak.
//!
//! Every figure is reported with its ratio to the limit measured in the
//! same run, plus the machine (cores, model, load average before/after).
//!
//! Run: `cargo bench -p tenant-server --bench dashboard [-- OPTIONS]`; see
//! [`USAGE`]. The report goes to stdout and to `<target>/bench-dashboard.md`.

#[path = "fixtures/flow_history.rs"]
mod flow_history;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use taskharbor::commands;
use taskharbor::domain::board::NewBoard;
use taskharbor::domain::users::NewUser;
use taskharbor::store::{self, Durability, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

#[path = "shared/mod.rs"]
mod shared;
use shared::{Args, Result, Samples, load_average, mib, note};

/// The server under test, built by cargo in the same profile as this bench.
const SERVER_BIN: &str = env!("CARGO_BIN_EXE_taskharbor");
const ADMIN_TOKEN: &str = "th_dashBENCHdashBENCHdashBENCHdashBENCHdashBE";

const USAGE: &str = "\
cargo bench -p tenant-server --bench dashboard -- [OPTIONS]

  --quick               small, fast settings (a smoke run)
  --board-items N       items on the board page                      [2000]
  --flow-items N        items in the flow history (5 events each)    [20000]
  --days N              days of flow history (and the stats range)   [90]
  --runs N              requests per measured figure                 [15]
  --dir PATH            where the temporary data dir goes            [system temp]

Every option also reads TH_BENCH_<NAME> (e.g. TH_BENCH_RUNS=5); arguments
win over the environment.";

// ---------------------------------------------------------------- options

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    board_items: i64,
    flow_items: i64,
    days: i64,
    runs: usize,
    dir: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self> {
        // Under `cargo test`, libtest's flags and filters reach every test
        // binary: not ours to refuse; the smoke run is the quick mode.
        let mut args = Args::parse(USAGE, smoke_test())?;
        if smoke_test() {
            args.set_quick();
        }
        let get = |name: &str| args.get(name);
        let quick = args.on("quick");
        let d = Self::defaults(quick);
        let num = |name: &str, default: i64| args.num(name, default);
        Ok(Self {
            quick,
            board_items: num("board-items", d.board_items)?.max(1),
            flow_items: num("flow-items", d.flow_items)?.max(1),
            days: num("days", d.days)?.clamp(3, 366),
            runs: num("runs", d.runs as i64)?.max(1) as usize,
            dir: get("dir").map(PathBuf::from),
        })
    }

    fn defaults(quick: bool) -> Self {
        Self {
            quick,
            board_items: 2_000,
            flow_items: if quick { 2_000 } else { 20_000 },
            days: 90,
            runs: if quick { 3 } else { 15 },
            dir: None,
        }
    }

    fn command(&self) -> String {
        let d = Self::defaults(self.quick);
        let mut extra = Vec::new();
        if self.quick {
            extra.push("--quick".to_owned());
        }
        for (name, value, default) in [
            ("board-items", self.board_items, d.board_items),
            ("flow-items", self.flow_items, d.flow_items),
            ("days", self.days, d.days),
            ("runs", self.runs as i64, d.runs as i64),
        ] {
            if value != default {
                extra.push(format!("--{name} {value}"));
            }
        }
        let mut cmd = String::from("cargo bench -p tenant-server --bench dashboard");
        if !extra.is_empty() {
            cmd.push_str(" -- ");
            cmd.push_str(&extra.join(" "));
        }
        cmd
    }
}

/// Built by `cargo test` (debug assertions on) rather than `cargo bench`:
/// run the quick mode as a smoke test, whatever the arguments.
fn smoke_test() -> bool {
    cfg!(debug_assertions)
}

/// `cargo test <filter>` runs every test binary with the filter; this one
/// only runs when the filter (if any) could name it.
fn filtered_out() -> bool {
    smoke_test()
        && std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .any(|filter| !"dashboard bench smoke".contains(filter.as_str()))
}

// ---------------------------------------------------------------- report

fn ratio(measured: f64, limit: f64) -> String {
    if limit > 0.0 && measured.is_finite() {
        format!("{:.1}×", measured / limit)
    } else {
        "n/a".into()
    }
}

// ---------------------------------------------------------------- /proc

/// `(VmRSS, VmHWM)` of a process in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} × {model}, Linux {}", kernel.trim())
}

// ---------------------------------------------------------------- seeding

struct Seeded {
    board: i64,
    flow_board: i64,
    flow_item: i64,
    events: i64,
    from: String,
    to: String,
    cookie: String,
    seconds: f64,
}

const BIG_TITLES: [&str; 4] = [
    "Parse the release notes for linked issues",
    "Login button does nothing on Safari 17",
    "Retry webhook deliveries with jittered backoff",
    "Document the lease rules for agent workers",
];

async fn seed(data_dir: &Path, options: &Options) -> Result<Seeded> {
    let started = Instant::now();
    let store = Store::open(data_dir, Durability::Full, 1).await?;
    let now = store::now_ms();
    commands::tokens::ensure_admin(&store, Some(ADMIN_TOKEN), now).await?;
    let new = NewBoard::parse("Big board", "BIG").map_err(|e| format!("{e:?}"))?;
    let board = commands::boards::create(&store, None, &new, now).await?;
    let new = NewBoard::parse("Flow board", "FLOW").map_err(|e| format!("{e:?}"))?;
    let flow_board = commands::boards::create(&store, None, &new, now).await?;

    // The lead: the first user, an admin, signed in (what the setup page
    // does: one command creates the user and the session).
    let user = NewUser::parse("lead", "a long enough password", "admin", None)
        .map_err(|e| format!("{e:?}"))?;
    let hash = commands::sessions::hash_password(&user.password).map_err(|e| e.to_string())?;
    let signed_in = commands::sessions::set_up_first_user(&store, &user, hash, now)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let session = signed_in.id;

    let mut conn = store.writer.acquire().await?;
    // Six holders (three agents, three humans) with live leases.
    for k in 0..6 {
        sqlx::query("INSERT INTO workers (name, kind, created_at) VALUES (?, ?, ?)")
            .bind(format!("holder-{k}"))
            .bind(if k % 2 == 0 { "agent" } else { "human" })
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Items spread over the six lanes; every 7th a defect; two labels;
    // every 10th open item held with a lease an hour out.
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?1), \
         l(k, id, role) AS (SELECT position, id, role FROM lanes WHERE board_id = ?2), \
         h(k, id) AS (SELECT CAST(substr(name, 8) AS INTEGER), id FROM workers WHERE name LIKE 'holder-%') \
         INSERT INTO items (board_id, number, lane_id, status, open, kind, parent_id, title, body, priority, labels, \
         agent_ready, created_by, created_at, updated_at, claim_worker_id, claimed_at, lease_expires_at, claim_token, claim_seq) \
         SELECT ?2, n, l.id, l.role, l.role IN ('backlog', 'ready'), CASE WHEN n % 7 = 0 THEN 'defect' ELSE 'task' END, NULL, \
         CASE n % 4 WHEN 0 THEN ?3 WHEN 1 THEN ?4 WHEN 2 THEN ?5 ELSE ?6 END || ' #' || n, '', n % 5, '[\"api\",\"ui\"]', \
         n % 2, NULL, ?7, ?7, \
         CASE WHEN n % 10 = 1 AND l.role NOT IN ('done', 'backlog') THEN h.id END, \
         CASE WHEN n % 10 = 1 AND l.role NOT IN ('done', 'backlog') THEN ?7 END, \
         CASE WHEN n % 10 = 1 AND l.role NOT IN ('done', 'backlog') THEN ?7 + 3600000 END, \
         CASE WHEN n % 10 = 1 AND l.role NOT IN ('done', 'backlog') THEN 1 END, \
         CASE WHEN n % 10 = 1 AND l.role NOT IN ('done', 'backlog') THEN 1 ELSE 0 END \
         FROM seq JOIN l ON l.k = n % 6 JOIN h ON h.k = n % 6",
    )
    .bind(options.board_items)
    .bind(board.id)
    .bind(BIG_TITLES[0])
    .bind(BIG_TITLES[1])
    .bind(BIG_TITLES[2])
    .bind(BIG_TITLES[3])
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Every 25th item waits for the one before it.
    sqlx::query(
        "INSERT INTO item_deps (item_id, blocked_by_id) SELECT i.id, p.id FROM items i \
         JOIN items p ON p.board_id = i.board_id AND p.number = i.number - 1 \
         WHERE i.board_id = ? AND i.number % 25 = 0",
    )
    .bind(board.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE boards SET next_number = ? WHERE id = ?")
        .bind(options.board_items + 1)
        .bind(board.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    // The flow history ends yesterday, so the range is closed days.
    let to_ms = now.div_euclid(flow_history::DAY_MS) * flow_history::DAY_MS - flow_history::DAY_MS;
    let from_ms = to_ms - (options.days - 1) * flow_history::DAY_MS;
    let events = flow_history::seed(
        &mut conn,
        flow_board.id,
        from_ms,
        options.days,
        options.flow_items,
    )
    .await?;
    let flow_item: i64 =
        sqlx::query_scalar("SELECT id FROM items WHERE board_id = ? ORDER BY id LIMIT 1")
            .bind(flow_board.id)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    drop(conn);
    store.close().await;
    Ok(Seeded {
        board: board.id,
        flow_board: flow_board.id,
        flow_item,
        events,
        from: taskharbor::domain::flow::date_of(from_ms),
        to: taskharbor::domain::flow::date_of(to_ms),
        cookie: format!("{}={session}", taskharbor::edge::cookies::SESSION_COOKIE),
        seconds: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------- limits

/// What a card shows, read raw: the physical limit of the board page's
/// database work.
const BOARD_ROWS_SQL: &str = "SELECT i.id, i.number, i.lane_id, i.status, i.kind, i.title, i.priority, i.labels, \
     i.agent_ready, w.name, w.kind, i.lease_expires_at, i.version, \
     (SELECT COUNT(*) FROM item_deps d JOIN items bi ON bi.id = d.blocked_by_id \
        WHERE d.item_id = i.id AND bi.status <> 'done') \
     FROM items i LEFT JOIN workers w ON w.id = i.claim_worker_id WHERE i.board_id = ? ORDER BY i.id";

/// The history the analytics replay, read raw (no JSON parsed).
const EVENT_ROWS_SQL: &str = "SELECT item_id, type, at, actor_id, data FROM events \
     WHERE board_id = ? AND item_id IS NOT NULL AND at < ? ORDER BY id";

/// Reads every row of `sql` into owned values, `runs` times; returns the
/// timings and the row count.
fn raw_read(db: &Path, sql: &str, params: &[i64], runs: usize) -> Result<(Samples, usize)> {
    let conn = store::writer::open_connection(db, Durability::Full)?;
    let mut samples = Samples::default();
    let mut rows_read = 0;
    for _ in 0..runs + 1 {
        let started = Instant::now();
        let mut statement = conn.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out: Vec<Vec<rusqlite::types::Value>> = Vec::new();
        while let Some(row) = rows.next()? {
            let n = row.as_ref().column_count();
            let mut values = Vec::with_capacity(n);
            for c in 0..n {
                values.push(row.get::<_, rusqlite::types::Value>(c)?);
            }
            out.push(values);
        }
        let elapsed = started.elapsed();
        rows_read = out.len();
        std::hint::black_box(out);
        // The first run warms the page cache, as the server's first
        // request does; it is not counted.
        if rows_read > 0 && samples.0.len() < runs {
            samples.push(elapsed);
        }
    }
    samples.0.truncate(runs);
    Ok((samples, rows_read))
}

/// A loopback HTTP/1.1 server that answers every request with `body`
/// (already in memory): the floor for moving the same bytes.
async fn copy_server(body: Arc<Vec<u8>>) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            // As the server's sockets: no Nagle delay on the last segment.
            let _ = socket.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0_u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let mut response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        response.extend_from_slice(&body);
                        if socket.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok((format!("http://{addr}/"), handle))
}

async fn transfer_floor(client: &reqwest::Client, bytes: usize, runs: usize) -> Result<Samples> {
    let (url, server) = copy_server(Arc::new(vec![b'x'; bytes])).await?;
    let mut samples = Samples::default();
    for i in 0..runs + 1 {
        let started = Instant::now();
        let body = client.get(&url).send().await?.bytes().await?;
        let elapsed = started.elapsed();
        if body.len() != bytes {
            return Err(format!("copy server sent {} of {bytes} bytes", body.len()).into());
        }
        if i > 0 {
            samples.push(elapsed);
        }
    }
    server.abort();
    Ok(samples)
}

// ---------------------------------------------------------------- server

struct Server {
    child: Child,
    pid: u32,
    base: String,
    log_tail: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    async fn start(data_dir: &Path, probe: &reqwest::Client) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(SERVER_BIN)
            .args(["--listen", &listen, "--data-dir"])
            .arg(data_dir)
            .args(["--log-format", "text", "--log", "info,sqlx=warn"])
            .env("TASKHARBOR_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
            .env("NO_COLOR", "1")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("TASKHARBOR_RATE_LIMIT")
            .env_remove("TASKHARBOR_READERS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("server exited at once")?;
        let log_tail = Arc::new(std::sync::Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            // Drain continuously: a full pipe would stall the server.
            let tail = log_tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if tail.len() >= 20 {
                        tail.remove(0);
                    }
                    tail.push(line);
                }
            });
        }
        let server = Self {
            child,
            pid,
            base: format!("http://{listen}"),
            log_tail,
        };
        let spawned = Instant::now();
        loop {
            if let Ok(resp) = probe.get(format!("{}/healthz", server.base)).send().await
                && resp.status().is_success()
            {
                return Ok(server);
            }
            if spawned.elapsed() > Duration::from_secs(30) {
                let tail = server
                    .log_tail
                    .lock()
                    .map(|t| t.clone())
                    .unwrap_or_default();
                return Err(format!("server not healthy after 30 s: {tail:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM (kill(1): `unsafe_code` is forbidden), then SIGKILL after 10 s.
    async fn stop(mut self) -> Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// Samples the server's RSS every 20 ms; the largest value seen.
fn watch_rss(pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            peak.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

struct Fetched {
    samples: Samples,
    bytes: usize,
    last: String,
}

/// `runs` timed GETs of `url` (after one untimed warm-up), each preceded by
/// `before` when given (a write that makes any cached answer stale).
async fn fetch_many(
    client: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
    runs: usize,
    before: Option<&(dyn Fn() -> reqwest::RequestBuilder + Sync)>,
) -> Result<Fetched> {
    let mut samples = Samples::default();
    let mut bytes = 0;
    let mut last = String::new();
    for i in 0..runs + 1 {
        if let Some(write) = before {
            let resp = write().send().await?;
            if !resp.status().is_success() {
                return Err(format!("the write before {url} answered {}", resp.status()).into());
            }
        }
        let started = Instant::now();
        let resp = client.get(url).header(auth.0, auth.1).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            return Err(
                format!("{url} answered {status}: {}", &body[..body.len().min(300)]).into(),
            );
        }
        if i > 0 {
            samples.push(elapsed);
        }
        bytes = body.len();
        last = body;
    }
    Ok(Fetched {
        samples,
        bytes,
        last,
    })
}

/// The `href`/`src` of the page's own `/static/app.*` assets (tera
/// escapes `/` in attribute values as `&#x2F;`).
fn asset_urls(html: &str) -> Vec<String> {
    let html = html.replace("&#x2F;", "/").replace("&amp;", "&");
    let mut urls: Vec<String> = html
        .match_indices("/static/app.")
        .filter_map(|(at, _)| {
            let rest = &html[at..];
            let end = rest.find('"')?;
            Some(rest[..end].to_owned())
        })
        .collect();
    urls.dedup();
    urls
}

// ---------------------------------------------------------------- main

fn main() -> Result<()> {
    if filtered_out() {
        return Ok(());
    }
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> Result<()> {
    let base_dir = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("taskharbor-dashboard-bench-")
        .tempdir_in(&base_dir)?;
    let load_before = load_average();
    let data_dir = scratch.path().join("data");
    note(format!(
        "seeding {} board items and {} flow items",
        options.board_items, options.flow_items
    ));
    let seeded = seed(&data_dir, &options).await?;
    let db = data_dir.join("taskharbor.db");
    note(format!(
        "seeded in {:.1} s: {} history events",
        seeded.seconds, seeded.events
    ));

    // 2. Physical limits on the same file, in-process.
    let (raw_board, board_rows) = raw_read(&db, BOARD_ROWS_SQL, &[seeded.board], options.runs)?;
    let end_ms =
        taskharbor::domain::flow::parse_date(&seeded.to).unwrap_or(0) + flow_history::DAY_MS;
    let (raw_events, event_rows) = raw_read(
        &db,
        EVENT_ROWS_SQL,
        &[seeded.flow_board, end_ms],
        options.runs,
    )?;

    // 3. The server.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let server = Server::start(&data_dir, &client).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(server.pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = watch_rss(server.pid, stop.clone(), peak.clone());
    let cookie = ("cookie", seeded.cookie.as_str());
    let bearer_value = format!("Bearer {ADMIN_TOKEN}");
    let bearer = ("authorization", bearer_value.as_str());

    note("board page");
    let board_url = format!("{}/boards/{}", server.base, seeded.board);
    let board = fetch_many(&client, &board_url, cookie, options.runs, None).await?;
    let cards = board.last.matches("<li class=\"card ").count();
    if cards as i64 != options.board_items.min(5_000) {
        return Err(format!(
            "board page shows {cards} cards, not {}",
            options.board_items
        )
        .into());
    }
    let after_board = rss_kib(server.pid);
    let board_floor = transfer_floor(&client, board.bytes, options.runs).await?;

    note("stats and flow page");
    let range = format!("from={}&to={}", seeded.from, seeded.to);
    let stats_url = format!(
        "{}/api/boards/{}/stats?{range}",
        server.base, seeded.flow_board
    );
    let flow_url = format!("{}/boards/{}/flow?{range}", server.base, seeded.flow_board);
    let comment_url = format!("{}/api/items/{}/comments", server.base, seeded.flow_item);
    let add_event = || {
        client
            .post(&comment_url)
            .header("authorization", &bearer_value)
            .json(&serde_json::json!({"body": "a new event: no cached answer is current"}))
    };
    let stats_fresh =
        fetch_many(&client, &stats_url, bearer, options.runs, Some(&add_event)).await?;
    let stats_again = fetch_many(&client, &stats_url, bearer, options.runs, None).await?;
    let report: serde_json::Value = serde_json::from_str(&stats_again.last)?;
    let expected_events = options.flow_items * flow_history::EVENTS_PER_ITEM;
    if report["events_read"].as_i64() != Some(expected_events)
        || report["done_total"].as_i64() != Some(options.flow_items)
    {
        return Err(format!(
            "stats read {} events and {} done, expected {expected_events} and {}",
            report["events_read"], report["done_total"], options.flow_items
        )
        .into());
    }
    let flow_fresh = fetch_many(&client, &flow_url, cookie, options.runs, Some(&add_event)).await?;
    let flow_again = fetch_many(&client, &flow_url, cookie, options.runs, None).await?;
    if !flow_again.last.contains("<svg") {
        return Err("the flow page drew no chart".into());
    }
    let after_flow = rss_kib(server.pid);
    let stats_floor = transfer_floor(&client, stats_fresh.bytes, options.runs).await?;
    let flow_floor = transfer_floor(&client, flow_fresh.bytes, options.runs).await?;

    note("static assets");
    let mut assets = Vec::new();
    for url in asset_urls(&board.last) {
        let body = client
            .get(format!("{}{url}", server.base))
            .send()
            .await?
            .bytes()
            .await?;
        assets.push((url, body.len()));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    let (_, hwm) = rss_kib(server.pid);
    server.stop().await?;
    let load_after = load_average();

    // Report.
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Dashboard benchmark\n");
    if smoke_test() {
        let _ = writeln!(
            w,
            "**Debug build (`cargo test`): a smoke run of the quick mode; these are not figures.**\n"
        );
    }
    let _ = writeln!(w, "- command: `{}`", options.command());
    let _ = writeln!(w, "- machine: {}", machine());
    let _ = writeln!(
        w,
        "- load average before / after: {load_before} / {load_after}"
    );
    let _ = writeln!(
        w,
        "- server: release `taskharbor` on loopback, fresh data dir, SQLite WAL (synchronous=full)"
    );
    let _ = writeln!(
        w,
        "- data: board of {} items ({board_rows} rows read raw); flow board: {} items, {} events ({event_rows} rows read raw), {} days {} to {}; seeded in {:.1} s",
        options.board_items,
        options.flow_items,
        seeded.events,
        options.days,
        seeded.from,
        seeded.to,
        seeded.seconds
    );
    let _ = writeln!(
        w,
        "- each figure: {} timed requests after one warm-up; limits measured in this run\n",
        options.runs
    );
    let _ = writeln!(
        w,
        "| what | measured | physical limit (same run) | ratio (p50) |"
    );
    let _ = writeln!(w, "|---|---|---|---|");
    let board_limit = raw_board.p50() + board_floor.p50();
    let _ = writeln!(
        w,
        "| `GET /boards/{{id}}`, {} items, {} bytes | {} | raw read of the card rows {:.2} ms + moving {} bytes over loopback {:.2} ms = {:.2} ms | {} |",
        options.board_items,
        board.bytes,
        board.samples.text(),
        raw_board.p50(),
        board.bytes,
        board_floor.p50(),
        board_limit,
        ratio(board.samples.p50(), board_limit)
    );
    // A fresh answer must read the history; a repeated one need not (the
    // server may reuse it), so its floor is moving the bytes alone.
    for (what, fresh, again, floor) in [
        (
            format!("`GET /api/boards/{{id}}/stats`, {} events", seeded.events),
            &stats_fresh,
            &stats_again,
            &stats_floor,
        ),
        (
            format!("`GET /boards/{{id}}/flow`, {} events", seeded.events),
            &flow_fresh,
            &flow_again,
            &flow_floor,
        ),
    ] {
        let limit = raw_events.p50() + floor.p50();
        let _ = writeln!(
            w,
            "| {what}, a new event before each request, {} bytes | {} | raw read of the event rows {:.2} ms + moving the bytes {:.2} ms = {:.2} ms | {} |",
            fresh.bytes,
            fresh.samples.text(),
            raw_events.p50(),
            floor.p50(),
            limit,
            ratio(fresh.samples.p50(), limit)
        );
        let _ = writeln!(
            w,
            "| {what}, repeated | {} | moving the bytes {:.2} ms | {} |",
            again.samples.text(),
            floor.p50(),
            ratio(again.samples.p50(), floor.p50())
        );
    }
    if assets.len() != 2 {
        return Err(
            format!("expected app.js and app.css in the board page, found {assets:?}").into(),
        );
    }
    let asset_total: usize = assets.iter().map(|(_, n)| n).sum();
    let asset_list: Vec<String> = assets
        .iter()
        .map(|(url, n)| format!("{} {n}", url.split('?').next().unwrap_or(url)))
        .collect();
    let _ = writeln!(
        w,
        "| the pages' own JS + CSS | {asset_total} bytes ({}) | 60,000-byte budget (asserted by a unit test) | {:.2} of budget |",
        asset_list.join(", "),
        asset_total as f64 / 60_000.0
    );
    let _ = writeln!(
        w,
        "| server RSS | idle {:.1} MiB; after the board pages {:.1} MiB; after stats + flow {:.1} MiB; peak sampled {:.1} MiB, VmHWM {:.1} MiB | database file {:.1} MiB | — |",
        mib(idle.0),
        mib(after_board.0),
        mib(after_flow.0),
        mib(peak.load(Ordering::Relaxed)),
        mib(hwm),
        std::fs::metadata(&db).map_or(0.0, |m| m.len() as f64 / 1024.0 / 1024.0)
    );
    println!("{out}");
    let target = PathBuf::from(SERVER_BIN)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let path = target.join(if smoke_test() {
        "bench-dashboard-smoke.md"
    } else {
        "bench-dashboard.md"
    });
    std::fs::write(&path, &out)?;
    note(format!("report written to {}", path.display()));
    Ok(())
}
