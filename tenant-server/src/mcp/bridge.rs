//! `taskharbor mcp --url URL`: a stdio bridge for MCP clients that only
//! launch local servers (Claude Desktop and the like).
//!
//! It reads newline-delimited JSON-RPC messages on stdin, POSTs each to the
//! streamable HTTP endpoint with the bearer token (and the session id and
//! protocol version the server handed out), and writes every JSON-RPC
//! message of the answer (a JSON body or an SSE stream) to stdout, one per
//! line. Requests run concurrently; `initialize` and notifications are sent
//! in order. If the server forgets the session (restart, idle timeout) the
//! bridge replays the client's `initialize` once and retries.
//!
//! stdout carries only protocol messages; diagnostics go to stderr. The
//! token never appears in either.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// JSON-RPC "server error" range: the HTTP hop failed.
const TRANSPORT_ERROR: i64 = -32000;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("invalid --url {0:?}: give the server's /mcp endpoint, e.g. http://localhost:8080/mcp")]
    Url(String),
    #[error("TASKHARBOR_TOKEN does not fit in an HTTP header")]
    Token,
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("stdio failed")]
    Io(#[from] std::io::Error),
}

/// What one POST brought back.
struct Answer {
    status: StatusCode,
    messages: Vec<Value>,
    error_text: String,
}

#[derive(Default)]
struct Session {
    id: Option<String>,
    protocol_version: Option<String>,
    /// The client's `initialize` request, replayed if the session is lost.
    initialize: Option<Value>,
}

struct Bridge {
    http: reqwest::Client,
    url: String,
    auth: HeaderValue,
    session: Mutex<Session>,
    out: mpsc::UnboundedSender<Value>,
}

/// Runs the bridge until stdin closes.
pub async fn run(url: &str, token: SecretString) -> Result<(), BridgeError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| BridgeError::Url(url.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(BridgeError::Url(url.to_owned()));
    }
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret().trim()))
        .map_err(|_| BridgeError::Token)?;
    auth.set_sensitive(true);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(BridgeError::Client)?;
    // Plain threads for stdio: blocking reads and writes, no runtime features.
    let (out, mut outgoing) = mpsc::unbounded_channel::<Value>();
    let writer = std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        while let Some(message) = outgoing.blocking_recv() {
            let mut line = message.to_string();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).is_err() || stdout.flush().is_err() {
                break;
            }
        }
    });
    let (incoming, mut lines) = mpsc::unbounded_channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let stop = line.is_err();
            if incoming.send(line).is_err() || stop {
                break;
            }
        }
    });
    let bridge = Arc::new(Bridge {
        http,
        url: url.to_owned(),
        auth,
        session: Mutex::new(Session::default()),
        out,
    });
    let mut requests = JoinSet::new();
    while let Some(line) = lines.recv().await {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(line) {
            Ok(message) => message,
            Err(e) => {
                bridge.emit(json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": -32700, "message": format!("parse error: {e}")}}));
                continue;
            }
        };
        let is_request = message.get("method").is_some() && message.get("id").is_some();
        let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
        if is_request && !is_initialize {
            let bridge = bridge.clone();
            requests.spawn(async move { bridge.forward(message).await });
        } else {
            // initialize and notifications keep their order.
            bridge.forward(message).await;
        }
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    bridge.end_session().await;
    drop(bridge);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    Ok(())
}

impl Bridge {
    fn emit(&self, message: Value) {
        let _ = self.out.send(message);
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one client message and relays what comes back.
    async fn forward(&self, message: Value) {
        let id = message.get("id").cloned();
        let is_request = message.get("method").is_some() && id.is_some();
        let is_initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
        if is_initialize {
            let mut session = self.session();
            session.initialize = Some(message.clone());
            session.id = None;
            session.protocol_version = None;
        }
        let mut answer = self.post(&message).await;
        let had_session = !is_initialize && self.session().id.is_some();
        if let Ok(a) = &answer
            && a.status == StatusCode::NOT_FOUND
            && had_session
            && self.reinitialize().await
        {
            answer = self.post(&message).await;
        }
        match answer {
            Ok(answer) if answer.status.is_success() => {
                for reply in answer.messages {
                    if is_initialize
                        && reply.get("id") == id.as_ref()
                        && let Some(version) = reply
                            .pointer("/result/protocolVersion")
                            .and_then(Value::as_str)
                    {
                        self.session().protocol_version = Some(version.to_owned());
                    }
                    self.emit(reply);
                }
            }
            Ok(answer) => {
                let reason = format!(
                    "the server answered HTTP {}: {}",
                    answer.status, answer.error_text
                );
                eprintln!("taskharbor mcp: {reason}");
                if is_request {
                    self.emit(json!({"jsonrpc": "2.0", "id": id,
                        "error": {"code": TRANSPORT_ERROR, "message": reason}}));
                }
            }
            Err(reason) => {
                eprintln!("taskharbor mcp: {reason}");
                if is_request {
                    self.emit(json!({"jsonrpc": "2.0", "id": id,
                        "error": {"code": TRANSPORT_ERROR, "message": reason}}));
                }
            }
        }
    }

    /// Replays the client's `initialize` (answer dropped) to get a new session.
    async fn reinitialize(&self) -> bool {
        let Some(mut init) = self.session().initialize.clone() else {
            return false;
        };
        init["id"] = json!("taskharbor-bridge-reinitialize");
        {
            let mut session = self.session();
            session.id = None;
        }
        match self.post(&init).await {
            Ok(answer) if answer.status.is_success() => {
                let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
                let _ = self.post(&initialized).await;
                eprintln!("taskharbor mcp: the server lost the session; started a new one");
                true
            }
            _ => false,
        }
    }

    async fn end_session(&self) {
        let Some(id) = self.session().id.clone() else {
            return;
        };
        let mut headers = self.headers();
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(SESSION_HEADER, value);
        }
        let _ = self
            .http
            .delete(&self.url)
            .headers(headers)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.auth.clone());
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let session = self.session();
        if let Some(value) = session
            .id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert(SESSION_HEADER, value);
        }
        if let Some(value) = session
            .protocol_version
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(VERSION_HEADER, value);
        }
        headers
    }

    /// POSTs `message`; collects the JSON-RPC messages of the answer.
    async fn post(&self, message: &Value) -> Result<Answer, String> {
        let mut response = self
            .http
            .post(&self.url)
            .headers(self.headers())
            .body(message.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.url, e.without_url()))?;
        let status = response.status();
        if let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.session().id = Some(id.to_owned());
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let mut messages = Vec::new();
        if is_sse {
            let mut sse = SseParser::default();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => messages.extend(sse.feed(&chunk)),
                    Ok(None) => break,
                    Err(e) => return Err(format!("the event stream broke: {}", e.without_url())),
                }
            }
            messages.extend(sse.finish());
            return Ok(Answer {
                status,
                messages,
                error_text: String::new(),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("cannot read the answer: {}", e.without_url()))?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let error_text = parsed
            .as_ref()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        if status.is_success() {
            match parsed {
                Some(Value::Array(batch)) => messages.extend(batch),
                Some(value @ Value::Object(_)) => messages.push(value),
                _ => {}
            }
        }
        Ok(Answer {
            status,
            messages,
            error_text,
        })
    }
}

/// Incremental `text/event-stream` parsing: the `data` of each event that
/// holds a JSON-RPC message (priming events have empty data).
#[derive(Default)]
struct SseParser {
    pending: Vec<u8>,
    data: Vec<String>,
}

impl SseParser {
    fn feed(&mut self, chunk: &[u8]) -> Vec<Value> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                out.extend(self.dispatch());
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<Value> {
        let mut out = self.feed(b"\n");
        out.extend(self.dispatch());
        out
    }

    fn dispatch(&mut self) -> Option<Value> {
        let data = std::mem::take(&mut self.data).join("\n");
        if data.trim().is_empty() {
            return None;
        }
        serde_json::from_str(&data).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks_are_reassembled() {
        let mut sse = SseParser::default();
        let mut got = sse.feed(b"id: 0\nretry: 3000\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",");
        assert!(got.is_empty());
        got.extend(sse.feed(b"\"id\":1,\"result\":{}}\r\n\r\n"));
        got.extend(sse.finish());
        assert_eq!(got, vec![json!({"jsonrpc": "2.0", "id": 1, "result": {}})]);
    }
}
