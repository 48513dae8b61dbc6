//! The harness: a real server on a loopback port over a real SQLite file
//! in a temp dir, and a small client that speaks its API.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use taskharbor::config::Config;
use taskharbor::store::{self, tokens};
use taskharbor::{AppState, serve};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub admin: String,
    pub state: AppState,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    // Dropped last: the database lives here.
    pub dir: TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.body
        );
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), None, adjust).await
    }

    /// Starts on an existing data dir (a restart); `admin` is the admin
    /// token minted by the previous run, if any.
    pub async fn start_in(
        dir: TempDir,
        admin: Option<String>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::for_data_dir(dir.path().to_owned());
        config.reaper_interval_ms = 100;
        config.shutdown_grace_seconds = 2;
        adjust(&mut config);
        let state = AppState::open(config).await.expect("open state");
        let admin = match (
            taskharbor::commands::tokens::ensure_admin(&state.store, None, store::now_ms())
                .await
                .expect("bootstrap"),
            admin,
        ) {
            (tokens::Bootstrap::Generated(secret), _) => secret,
            (_, Some(known)) => known,
            (other, None) => panic!("expected a generated admin token, got {other:?}"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                serve(listener, state, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            }
        });
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Self {
            addr,
            admin,
            state,
            http,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.send(Some(token), Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.send(Some(token), Method::POST, path, Some(body), &[])
            .await
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Reply {
        self.send(Some(token), Method::PATCH, path, Some(body), &[])
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Reply {
        self.send(Some(token), Method::DELETE, path, None, &[])
            .await
    }

    /// A board with the default lanes; returns its id.
    pub async fn board(&self, key: &str) -> i64 {
        let board = self
            .post(
                &self.admin,
                "/api/boards",
                json!({"name": format!("Board {key}"), "key": key}),
            )
            .await
            .expect(201);
        board["id"].as_i64().expect("board id")
    }

    pub async fn lanes(&self, board: i64) -> Vec<Value> {
        let lanes = self
            .get(&self.admin, &format!("/api/boards/{board}/lanes"))
            .await
            .expect(200);
        lanes["lanes"].as_array().expect("lanes").clone()
    }

    pub async fn lane_id(&self, board: i64, role: &str) -> i64 {
        self.lanes(board)
            .await
            .iter()
            .find(|l| l["role"] == role)
            .and_then(|l| l["id"].as_i64())
            .expect("lane")
    }

    /// Mints a token for worker `name` of `kind` with `scopes`.
    pub async fn token(
        &self,
        name: &str,
        kind: &str,
        scopes: &[&str],
        board: Option<i64>,
    ) -> String {
        let mut body = json!({"name": format!("{name}-token"), "worker": {"name": name, "kind": kind}, "scopes": scopes});
        if let Some(board) = board {
            body["board_id"] = json!(board);
        }
        let created = self
            .post(&self.admin, "/api/tokens", body)
            .await
            .expect(201);
        created["token"].as_str().expect("secret").to_owned()
    }

    pub async fn agent(&self, name: &str) -> String {
        self.token(name, "agent", &["queue:write"], None).await
    }

    pub async fn human(&self, name: &str) -> String {
        self.token(name, "human", &["queue:write"], None).await
    }

    /// An agent-ready item in the ready lane; returns its id.
    pub async fn item(&self, board: i64, title: &str) -> i64 {
        self.item_with(board, json!({"title": title, "agent_ready": true}))
            .await
    }

    pub async fn item_with(&self, board: i64, body: Value) -> i64 {
        let item = self
            .post(&self.admin, &format!("/api/boards/{board}/items"), body)
            .await
            .expect(201);
        item["id"].as_i64().expect("item id")
    }

    pub async fn item_json(&self, id: i64) -> Value {
        self.get(&self.admin, &format!("/api/items/{id}"))
            .await
            .expect(200)
    }

    pub async fn events(&self, id: i64) -> Vec<String> {
        let events = self
            .get(&self.admin, &format!("/api/items/{id}/events"))
            .await
            .expect(200);
        events["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    pub async fn patch_board(&self, board: i64, body: Value) {
        self.patch(&self.admin, &format!("/api/boards/{board}"), body)
            .await
            .expect(200);
    }

    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
