//! A real HTTP receiver for webhook tests: records every request and
//! answers with a scripted sequence of statuses.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Script {
    /// (status, Retry-After) answered in order; 200 once exhausted.
    answers: Vec<(u16, Option<u64>)>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    /// The receiver's origin, for clients that add their own path.
    pub base: String,
    state: Arc<Mutex<Script>>,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

async fn record(
    State(state): State<Arc<Mutex<Script>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut script = state.lock().expect("lock");
    script.received.push(Received {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (status, retry_after) = if script.answers.is_empty() {
        (200, None)
    } else {
        script.answers.remove(0)
    };
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), "ok").into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().expect("header"));
    }
    response
}

impl Receiver {
    pub async fn start(answers: Vec<(u16, Option<u64>)>) -> Self {
        let state = Arc::new(Mutex::new(Script {
            answers,
            received: Vec::new(),
        }));
        let app = Router::new()
            // Any path: webhooks post to /hook, an OTLP exporter to /v1/traces.
            .fallback(post(record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        Self {
            base: format!("http://{addr}"),
            url: format!("http://{addr}/hook"),
            state,
            _task: Arc::new(task),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    /// Waits until at least `n` requests arrived (or fails after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Checks deliveries with the Standard Webhooks reference verifier
/// (PyPI `standardwebhooks`, installed by `.ci/webhooks-prereqs.sh`).
pub fn verify_with_reference(secret: &str, deliveries: &[Received]) -> Vec<Value> {
    let home = std::env::var("XDG_CACHE_HOME")
        .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
    let python = format!("{home}/taskharbor/venv-webhooks/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "the Standard Webhooks verifier is missing: run .ci/webhooks-prereqs.sh ({python})"
    );
    let cases: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            json!({"secret": secret, "body": d.body, "headers": {
                "webhook-id": d.header("webhook-id"),
                "webhook-timestamp": d.header("webhook-timestamp"),
                "webhook-signature": d.header("webhook-signature"),
            }})
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/verify.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the verifier");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&cases).expect("json").as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("verifier output");
    assert!(out.status.success(), "verifier failed");
    serde_json::from_slice(&out.stdout).expect("verifier json")
}
