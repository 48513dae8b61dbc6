//! HTTP tests of every waitlist and admin path over the real router and a
//! real SQLite file in a temp dir, without a cluster (`--kube=off`). The
//! cluster paths (create, follow, reveal) are in `tests/k8s`.

mod admin;
mod waitlist;

use std::net::SocketAddr;

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response, header},
};
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::Value;
use taskharbor_control_plane::{AppState, config::Config, router, store};
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

pub struct TestApp {
    pub state: AppState,
    router: Router,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn new(extra: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().display().to_string();
        let mut argv = vec![
            "taskharbor-control-plane",
            "--admin-token",
            ADMIN_TOKEN,
            "--kube",
            "off",
            "--data-dir",
            &data_dir,
        ];
        argv.extend_from_slice(extra);
        let config = Config::try_parse_from(argv).expect("config");
        let pool = store::connect(&config.database_path())
            .await
            .expect("database");
        let state = AppState::new(&config, pool, None).expect("state");
        TestApp {
            router: router(state.clone()),
            state,
            _dir: dir,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
    }

    /// A request from client address `ip` (as the socket would report it).
    pub fn from(ip: [u8; 4]) -> axum::http::request::Builder {
        Request::builder().extension(ConnectInfo(SocketAddr::from((ip, 40000))))
    }

    pub async fn signups(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT email, status FROM signups ORDER BY id")
            .fetch_all(&self.state.pool)
            .await
            .expect("query")
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.send(request).await;
        let status = response.status().as_u16();
        (status, json(response).await)
    }
}

pub async fn text(response: Response<Body>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

pub async fn json(response: Response<Body>) -> Value {
    let body = text(response).await;
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Asserts the API.md error shape and returns `details`.
pub fn error_details(body: &Value, code: &str) -> Value {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message missing: {body}"
    );
    body["error"]["details"].clone()
}
