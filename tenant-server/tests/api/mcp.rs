//! The MCP endpoint (`/mcp`, issue 4), two ways:
//!
//! - speaking MCP JSON-RPC over streamable HTTP directly with reqwest
//!   (initialize → notifications/initialized → tools/list → tools/call,
//!   `Mcp-Session-Id`, JSON-or-SSE answers): every tool's success and
//!   error paths, scopes, resources, revocation;
//! - with the official Python SDK (`mcp` on PyPI, a client nobody here
//!   wrote) over HTTP and over the `taskharbor mcp` stdio bridge, via
//!   `tests/mcp_client/taskharbor_mcp_client.py`. Its venv comes from
//!   `.ci/mcp-prereqs.sh`; without it these tests fail, they never skip.

use crate::support::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use taskharbor::store::model::Timestamp;

const READ_TOOLS: [&str; 4] = ["get_item", "list_allowed", "list_boards", "list_items"];
const ALL_TOOLS: [&str; 17] = [
    "add_progress",
    "checkpoint",
    "claim",
    "claim_next",
    "complete",
    "create_item",
    "get_item",
    "heartbeat",
    "list_allowed",
    "list_boards",
    "list_items",
    "release",
    "report_defect",
    "set_agent_ready",
    "set_dependencies",
    "submit_for_review",
    "update_item",
];

/// The JSON-RPC messages of an answer: a JSON body, or the `data` of each
/// SSE event (rmcp opens its streams with an empty priming event).
fn messages(content_type: &str, body: &str) -> Vec<Value> {
    if content_type.starts_with("application/json") {
        return match serde_json::from_str(body) {
            Ok(Value::Array(batch)) => batch,
            Ok(value) => vec![value],
            Err(_) => vec![],
        };
    }
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}

/// A minimal MCP client over streamable HTTP.
struct Mcp<'a> {
    server: &'a TestServer,
    token: String,
    session: Option<String>,
    next_id: i64,
}

/// What one tool call returned.
#[derive(Debug)]
struct ToolReply {
    is_error: bool,
    value: Value,
}

impl ToolReply {
    #[track_caller]
    fn ok(self) -> Value {
        assert!(!self.is_error, "tool error: {}", self.value);
        self.value
    }

    #[track_caller]
    fn err(self, code: &str) -> Value {
        assert!(
            self.is_error,
            "expected {code}, got success: {}",
            self.value
        );
        assert_eq!(self.value["error"]["code"], code, "{}", self.value);
        assert!(
            self.value["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.value
        );
        self.value["error"]["details"].clone()
    }
}

impl<'a> Mcp<'a> {
    async fn connect(server: &'a TestServer, token: &str) -> Self {
        let mut mcp = Self {
            server,
            token: token.to_owned(),
            session: None,
            next_id: 1,
        };
        let init = mcp
            .rpc(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "taskharbor-tests", "version": "1"}}),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "taskharbor", "{init}");
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        assert!(
            init["result"]["capabilities"]["resources"].is_object(),
            "{init}"
        );
        assert!(mcp.session.is_some(), "no Mcp-Session-Id on initialize");
        let (status, _) = mcp
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        mcp
    }

    async fn post(&mut self, body: Value) -> (StatusCode, Vec<Value>) {
        let mut req = self
            .server
            .http
            .post(self.server.url("/mcp"))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = &self.session {
            req = req
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let res = req.send().await.expect("mcp request");
        let status = res.status();
        if let Some(id) = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(id.to_owned());
        }
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = res.text().await.expect("mcp body");
        (status, messages(&content_type, &body))
    }

    /// One request; returns the JSON-RPC response message with its id.
    async fn rpc(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let (status, messages) = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(status, StatusCode::OK, "{method}: {messages:?}");
        messages
            .into_iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to {method}"))
    }

    async fn tools(&mut self) -> Vec<Value> {
        let listed = self.rpc("tools/list", json!({})).await;
        listed["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list: {listed}"))
            .clone()
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tools()
            .await
            .iter()
            .map(|t| t["name"].as_str().unwrap_or("").to_owned())
            .collect();
        names.sort();
        names
    }

    async fn call(&mut self, tool: &str, args: Value) -> ToolReply {
        let answer = self
            .rpc("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        let result = &answer["result"];
        assert!(result.is_object(), "{tool}: not a tool result: {answer}");
        let value = result["structuredContent"].clone();
        assert!(value.is_object(), "{tool}: no structured content: {answer}");
        let text: Value = result["content"][0]["text"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        assert_eq!(
            text, value,
            "{tool}: text content mirrors the structured content"
        );
        ToolReply {
            is_error: result["isError"] == json!(true),
            value,
        }
    }
}

/// Mints a token and returns (id, secret).
async fn token_with_id(
    server: &TestServer,
    name: &str,
    kind: &str,
    scopes: &[&str],
) -> (i64, String) {
    let created = server
        .post(
            &server.admin,
            "/api/tokens",
            json!({"name": format!("{name}-token"), "worker": {"name": name, "kind": kind}, "scopes": scopes}),
        )
        .await
        .expect(201);
    (
        created["id"].as_i64().expect("token id"),
        created["token"].as_str().expect("secret").to_owned(),
    )
}

async fn raw_initialize(server: &TestServer, header: Option<(&str, String)>) -> reqwest::Response {
    let mut req = server
        .http
        .post(server.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.expect("request")
}

#[track_caller]
fn assert_unauthorized(res: &reqwest::Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
}

#[tokio::test]
async fn mcp_without_a_working_token_is_401_and_revocation_applies_on_the_next_request() {
    let server = TestServer::start().await;
    assert_unauthorized(&raw_initialize(&server, None).await);
    assert_unauthorized(
        &raw_initialize(
            &server,
            Some(("authorization", format!("Bearer th_{}", "x".repeat(40)))),
        )
        .await,
    );
    let (id, secret) = token_with_id(&server, "revoked-agent", "agent", &["queue:write"]).await;
    let ok = raw_initialize(&server, Some(("x-api-key", secret.clone()))).await;
    assert_eq!(ok.status(), StatusCode::OK, "X-API-Key works like Bearer");

    let mut mcp = Mcp::connect(&server, &secret).await;
    mcp.call("list_allowed", json!({})).await.ok();
    server
        .delete(&server.admin, &format!("/api/tokens/{id}"))
        .await
        .expect(200);
    let (status, _) = mcp
        .post(json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the open session does not outlive the token"
    );
}

#[tokio::test]
async fn tools_list_reflects_the_scope_and_every_tool_is_annotated() {
    let server = TestServer::start().await;
    let reader = server.token("reader", "agent", &["queue:read"], None).await;
    let writer = server.agent("writer").await;

    let mut read = Mcp::connect(&server, &reader).await;
    assert_eq!(read.tool_names().await, READ_TOOLS);

    let mut write = Mcp::connect(&server, &writer).await;
    assert_eq!(write.tool_names().await, ALL_TOOLS);
    for tool in write.tools().await {
        let name = tool["name"].as_str().unwrap_or("");
        let description = tool["description"].as_str().unwrap_or("");
        assert!(
            !description.is_empty() && description.len() <= 200,
            "{name}: short description"
        );
        let read_only = tool["annotations"]["readOnlyHint"].as_bool();
        assert!(read_only.is_some(), "{name}: readOnlyHint");
        assert!(
            tool["annotations"]["destructiveHint"].is_boolean(),
            "{name}: destructiveHint"
        );
        assert_eq!(
            read_only == Some(true),
            READ_TOOLS.contains(&name),
            "{name}: read-only exactly when it is a read tool"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
    }
    let claim = write
        .tools()
        .await
        .into_iter()
        .find(|t| t["name"] == "claim")
        .expect("claim tool");
    assert!(
        claim["inputSchema"]["properties"]["claim_token"].is_object(),
        "holder tools accept claim_token: {claim}"
    );
}

#[tokio::test]
async fn a_read_token_calling_a_write_tool_is_forbidden() {
    let server = TestServer::start().await;
    let board = server.board("RO").await;
    let item = server.item(board, "look, don't touch").await;
    let reader = server.token("reader", "agent", &["queue:read"], None).await;
    let mut mcp = Mcp::connect(&server, &reader).await;
    let seen = mcp.call("get_item", json!({"item_id": item})).await.ok();
    assert_eq!(seen["id"], json!(item));
    for (tool, args) in [
        ("claim", json!({"item_id": item})),
        ("claim_next", json!({})),
        ("create_item", json!({"board_id": board, "title": "x"})),
        (
            "set_agent_ready",
            json!({"item_id": item, "agent_ready": false}),
        ),
    ] {
        let details = mcp.call(tool, args).await.err("forbidden");
        assert_eq!(details["required_scope"], "queue:write", "{tool}");
    }
    assert!(server.item_json(item).await["claim"].is_null());
}

#[tokio::test]
async fn the_agent_loop_claims_reports_progress_and_completes() {
    let server = TestServer::start().await;
    let board = server.board("LOOP").await;
    let item = server.item(board, "the work").await;
    let agent = server.agent("looper").await;
    let mut mcp = Mcp::connect(&server, &agent).await;

    let allowed = mcp.call("list_allowed", json!({})).await.ok();
    assert_eq!(allowed["items"][0]["id"], json!(item));
    assert!(
        allowed["items"][0].get("body").is_none(),
        "lists stay compact"
    );

    let claimed = mcp.call("claim_next", json!({"start": true})).await.ok();
    assert_eq!(claimed["claimed"], json!(true));
    assert_eq!(claimed["id"], json!(item));
    assert_eq!(claimed["status"], "in_progress");
    assert_eq!(claimed["claim"]["worker"]["name"], "looper");
    assert!(claimed["handoff"].is_object());
    let token = claimed["claim"]["token"].clone();

    let held = mcp.call("list_allowed", json!({})).await.ok();
    assert_eq!(held["items"][0]["claim"]["mine"], json!(true));

    let note = mcp
        .call(
            "add_progress",
            json!({"item_id": item, "note": "step one done", "claim_token": token}),
        )
        .await
        .ok();
    assert_eq!(note["kind"], "progress");

    let beat = mcp
        .call("heartbeat", json!({"item_id": item, "claim_token": token}))
        .await
        .ok();
    assert_eq!(beat["claim_token"], token);

    let done = mcp
        .call(
            "complete",
            json!({"item_id": item, "note": "shipped", "claim_token": token}),
        )
        .await
        .ok();
    assert_eq!(done["status"], "done");
    assert!(done["claim"].is_null(), "done ends the claim");

    let comments = server
        .get(&server.admin, &format!("/api/items/{item}/comments"))
        .await
        .expect(200);
    let kinds: Vec<&str> = comments["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"progress"), "{comments}");

    let none = mcp.call("claim_next", json!({})).await.ok();
    assert_eq!(none["claimed"], json!(false));
}

#[tokio::test]
async fn claim_conflicts_carry_the_holder_and_lease_end_and_limits_apply() {
    let server = TestServer::start().await;
    let board = server.board("RACE").await;
    server.patch_board(board, json!({"claim_limit": 1})).await;
    let item = server.item(board, "contested").await;
    let other = server.item(board, "second").await;
    let a = server.agent("alpha").await;
    let b = server.agent("beta").await;
    let mut alpha = Mcp::connect(&server, &a).await;
    let mut beta = Mcp::connect(&server, &b).await;

    alpha.call("claim", json!({"item_id": item})).await.ok();
    let details = beta
        .call("claim", json!({"item_id": item}))
        .await
        .err("claim_conflict");
    assert_eq!(details["holder"]["name"], "alpha");
    assert!(details["lease_expires_at"].is_string(), "{details}");
    assert!(details["claimed_at"].is_string(), "{details}");

    let renewed = alpha.call("claim", json!({"item_id": item})).await.ok();
    assert_eq!(renewed["id"], json!(item), "claiming what you hold renews");

    let details = alpha
        .call("claim", json!({"item_id": other}))
        .await
        .err("claim_limit_reached");
    assert_eq!(details, json!({"limit": 1, "held": 1}));
    alpha
        .call("claim_next", json!({}))
        .await
        .err("claim_limit_reached");

    beta.call("heartbeat", json!({"item_id": item}))
        .await
        .err("not_holder");
    beta.call("release", json!({"item_id": item}))
        .await
        .err("not_holder");
    beta.call("complete", json!({"item_id": item}))
        .await
        .err("not_holder");
    beta.call("claim", json!({"item_id": 999_999}))
        .await
        .err("not_found");
}

#[tokio::test]
async fn a_stale_claim_token_is_lease_superseded() {
    let server = TestServer::start().await;
    let board = server.board("FENCE").await;
    let item = server.item(board, "fenced").await;
    let agent = server.agent("fencer").await;
    let mut mcp = Mcp::connect(&server, &agent).await;
    let first = mcp.call("claim", json!({"item_id": item})).await.ok();
    let old = first["claim"]["token"].clone();
    let released = mcp
        .call(
            "release",
            json!({"item_id": item, "reason": "restart", "claim_token": old}),
        )
        .await
        .ok();
    assert!(released["claim"].is_null());
    let second = mcp.call("claim", json!({"item_id": item})).await.ok();
    assert_ne!(second["claim"]["token"], old);
    for (tool, args) in [
        ("heartbeat", json!({"item_id": item, "claim_token": old})),
        (
            "add_progress",
            json!({"item_id": item, "note": "x", "claim_token": old}),
        ),
        (
            "checkpoint",
            json!({"item_id": item, "note": "x", "claim_token": old}),
        ),
        ("complete", json!({"item_id": item, "claim_token": old})),
        ("release", json!({"item_id": item, "claim_token": old})),
    ] {
        let details = mcp.call(tool, args).await.err("lease_superseded");
        assert_eq!(details["current_token"], second["claim"]["token"], "{tool}");
    }
}

#[tokio::test]
async fn checkpoint_hands_off_to_the_next_worker_and_review_gates_hold() {
    let server = TestServer::start().await;
    let board = server.board("HAND").await;
    let done = server.lane_id(board, "done").await;
    server
        .patch(
            &server.admin,
            &format!("/api/lanes/{done}"),
            json!({"who": "humans"}),
        )
        .await
        .expect(200);
    let item = server.item(board, "long task").await;
    let a = server.agent("first").await;
    let b = server.agent("second").await;
    let mut first = Mcp::connect(&server, &a).await;
    first.call("claim", json!({"item_id": item})).await.ok();
    first
        .call("checkpoint", json!({"item_id": item, "note": "  "}))
        .await
        .err("validation_failed");
    let blocked = first
        .call(
            "checkpoint",
            json!({"item_id": item, "note": "parser done; next: tests in src/x.rs"}),
        )
        .await
        .ok();
    assert_eq!(blocked["status"], "blocked");
    assert!(blocked["claim"].is_null(), "a checkpoint ends the claim");

    server
        .post(
            &server.admin,
            &format!("/api/items/{item}/move"),
            json!({"status": "ready"}),
        )
        .await
        .expect(200);
    let mut second = Mcp::connect(&server, &b).await;
    let picked = second.call("claim_next", json!({})).await.ok();
    assert_eq!(picked["id"], json!(item));
    assert_eq!(
        picked["handoff"]["checkpoint"]["body"],
        "parser done; next: tests in src/x.rs"
    );

    second
        .call("complete", json!({"item_id": item}))
        .await
        .err("forbidden");
    let review = second
        .call(
            "submit_for_review",
            json!({"item_id": item, "note": "ready for eyes"}),
        )
        .await
        .ok();
    assert_eq!(review["status"], "review");
    assert!(review["claim"].is_null());
}

#[tokio::test]
async fn holder_calls_renew_the_lease() {
    let server = TestServer::start().await;
    let board = server.board("LEASE").await;
    let item = server.item(board, "keep me").await;
    let agent = server.agent("keeper").await;
    let mut mcp = Mcp::connect(&server, &agent).await;
    let claimed = mcp.call("claim", json!({"item_id": item})).await.ok();
    // Timestamps print a variable number of fraction digits: compare instants.
    let instant = |value: &Value| {
        Timestamp::parse_rfc3339(value.as_str().expect("lease")).expect("RFC 3339 lease")
    };
    let mut lease = instant(&claimed["claim"]["lease_expires_at"]);
    for (tool, args) in [
        ("get_item", json!({"item_id": item})),
        (
            "add_progress",
            json!({"item_id": item, "note": "still here"}),
        ),
        ("heartbeat", json!({"item_id": item})),
    ] {
        tokio::time::sleep(Duration::from_millis(20)).await;
        mcp.call(tool, args).await.ok();
        let now = instant(&server.item_json(item).await["claim"]["lease_expires_at"]);
        assert!(now > lease, "{tool} renews the lease: {lease:?} -> {now:?}");
        lease = now;
    }
}

#[tokio::test]
async fn report_defect_files_subtasks_and_blocking_defects() {
    let server = TestServer::start().await;
    let board = server.board("DEF").await;
    let item = server.item(board, "feature").await;
    let agent = server.agent("finder").await;
    let mut mcp = Mcp::connect(&server, &agent).await;
    let claimed = mcp.call("claim", json!({"item_id": item})).await.ok();
    let key = claimed["key"].as_str().expect("key").to_owned();

    let sub = mcp
        .call(
            "report_defect",
            json!({"item_id": item, "kind": "subtask", "title": "split out the parser"}),
        )
        .await
        .ok();
    assert_eq!(sub["created"]["kind"], "subtask");
    assert_eq!(sub["created"]["parent_id"], json!(item));

    let defect = mcp
        .call(
            "report_defect",
            json!({"item_id": item, "title": "crash on empty input", "priority": 1,
                   "blocking": true, "claim_token": claimed["claim"]["token"]}),
        )
        .await
        .ok();
    let defect_id = defect["created"]["id"].as_i64().expect("defect id");
    assert_eq!(defect["created"]["kind"], "defect");
    assert_eq!(
        defect["created"]["labels"],
        json!([format!("found-in:{key}")])
    );
    assert_eq!(defect["item"]["blocked_by"], json!([defect_id]));
    assert_eq!(
        defect["item"]["claim"]["mine"],
        json!(true),
        "still held, lease renewed"
    );

    mcp.call(
        "report_defect",
        json!({"item_id": item, "kind": "subtask", "title": "x", "blocking": true}),
    )
    .await
    .err("validation_failed");
    mcp.call("report_defect", json!({"item_id": item, "title": ""}))
        .await
        .err("validation_failed");
}

#[tokio::test]
async fn planner_tools_create_link_flag_and_edit_items() {
    let server = TestServer::start().await;
    let board = server.board("PLAN").await;
    let planner = server.human("planner").await;
    let mut mcp = Mcp::connect(&server, &planner).await;

    let boards = mcp.call("list_boards", json!({})).await.ok();
    assert_eq!(boards["boards"][0]["key"], "PLAN");

    let epic = mcp
        .call(
            "create_item",
            json!({"board_id": board, "title": "Epic", "priority": 1, "labels": ["core"]}),
        )
        .await
        .ok();
    let epic_id = epic["id"].as_i64().expect("id");
    assert_eq!(epic["status"], "backlog");
    let sub = mcp
        .call(
            "create_item",
            json!({"board_id": board, "title": "Part", "kind": "subtask", "parent_id": epic_id}),
        )
        .await
        .ok();
    let sub_id = sub["id"].as_i64().expect("id");
    mcp.call(
        "create_item",
        json!({"board_id": board, "title": "orphan", "kind": "subtask"}),
    )
    .await
    .err("validation_failed");
    mcp.call("create_item", json!({"board_id": board, "title": ""}))
        .await
        .err("validation_failed");
    mcp.call("create_item", json!({"board_id": 4242, "title": "x"}))
        .await
        .err("not_found");

    let linked = mcp
        .call(
            "set_dependencies",
            json!({"item_id": epic_id, "blocked_by": [sub_id]}),
        )
        .await
        .ok();
    assert_eq!(linked["blocked_by"], json!([sub_id]));
    let ready = mcp
        .call(
            "set_agent_ready",
            json!({"item_id": sub_id, "agent_ready": true}),
        )
        .await
        .ok();
    assert_eq!(ready["agent_ready"], json!(true));

    let version = linked["version"].as_i64().expect("version");
    let edited = mcp
        .call(
            "update_item",
            json!({"item_id": epic_id, "title": "Epic, renamed", "expected_version": version}),
        )
        .await
        .ok();
    assert_eq!(edited["title"], "Epic, renamed");
    let details = mcp
        .call(
            "update_item",
            json!({"item_id": epic_id, "priority": 0, "expected_version": version}),
        )
        .await
        .err("version_mismatch");
    assert_eq!(details["current"], json!(version + 1));
    mcp.call("update_item", json!({"item_id": epic_id, "priority": 9}))
        .await
        .err("validation_failed");

    let listed = mcp
        .call(
            "list_items",
            json!({"board_id": board, "kind": "subtask", "status": "backlog"}),
        )
        .await
        .ok();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["items"][0]["id"], json!(sub_id));

    // Undecodable arguments get the same error shape, code invalid_request.
    mcp.call("get_item", json!({"item_id": "seven"}))
        .await
        .err("invalid_request");
    mcp.call("list_allowed", json!({"limit": 0}))
        .await
        .err("invalid_request");
    // Unknown arguments are refused by name, as unknown JSON fields are in REST.
    let typo = mcp
        .call("list_allowed", json!({"board_id": board, "limt": 5}))
        .await;
    let message = typo.value["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    typo.err("invalid_request");
    assert!(message.contains("\"limt\""), "{message}");
    assert!(!message.contains("struct"), "{message}");
}

#[tokio::test]
async fn a_board_confined_token_sees_other_boards_items_as_not_found_and_locks_hold() {
    let server = TestServer::start().await;
    let mine = server.board("MINE").await;
    let theirs = server.board("THEIRS").await;
    let hidden = server.item(theirs, "secret").await;
    let own = server.item(mine, "own").await;
    let confined = server
        .token("confined", "agent", &["queue:write"], Some(mine))
        .await;
    let mut mcp = Mcp::connect(&server, &confined).await;
    mcp.call("get_item", json!({"item_id": hidden}))
        .await
        .err("not_found");
    mcp.call("claim", json!({"item_id": hidden}))
        .await
        .err("not_found");
    server.patch_board(mine, json!({"locked": true})).await;
    mcp.call("claim", json!({"item_id": own}))
        .await
        .err("board_locked");
}

#[tokio::test]
async fn resources_serve_the_guide_and_items() {
    let server = TestServer::start().await;
    let board = server.board("RES").await;
    let item = server.item(board, "as a resource").await;
    let agent = server.agent("reader").await;
    let mut mcp = Mcp::connect(&server, &agent).await;

    let listed = mcp.rpc("resources/list", json!({})).await;
    assert_eq!(
        listed["result"]["resources"][0]["uri"],
        "taskharbor://guide"
    );
    let templates = mcp.rpc("resources/templates/list", json!({})).await;
    assert_eq!(
        templates["result"]["resourceTemplates"][0]["uriTemplate"],
        "taskharbor://items/{id}"
    );
    let guide = mcp
        .rpc("resources/read", json!({"uri": "taskharbor://guide"}))
        .await;
    let text = guide["result"]["contents"][0]["text"]
        .as_str()
        .expect("guide text");
    for step in [
        "claim_next",
        "heartbeat",
        "add_progress",
        "checkpoint",
        "release",
        "submit_for_review",
    ] {
        assert!(text.contains(step), "the guide covers {step}");
    }
    let read = mcp
        .rpc(
            "resources/read",
            json!({"uri": format!("taskharbor://items/{item}")}),
        )
        .await;
    let body: Value = serde_json::from_str(
        read["result"]["contents"][0]["text"]
            .as_str()
            .expect("item text"),
    )
    .expect("item json");
    assert_eq!(body["title"], "as a resource");
    let missing = mcp
        .rpc(
            "resources/read",
            json!({"uri": "taskharbor://items/424242"}),
        )
        .await;
    assert!(missing["error"]["code"].is_i64(), "{missing}");
}

#[tokio::test]
async fn there_is_no_standalone_event_stream() {
    let server = TestServer::start().await;
    let agent = server.agent("streamer").await;
    let res = server
        .http
        .get(server.url("/mcp"))
        .bearer_auth(&agent)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST, DELETE")
    );
}

/// Runs `taskharbor mcp --url …` with `lines` on stdin; returns (stdout, stderr).
async fn bridge(server: &TestServer, token: &str, lines: &[Value]) -> (String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskharbor"))
        .args(["mcp", "--url", &server.url("/mcp")])
        .env("TASKHARBOR_TOKEN", token)
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bridge starts");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in lines {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the bridge exits when stdin closes")
        .expect("bridge output");
    assert!(output.status.success(), "bridge failed: {output:?}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn initialize_line(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_bridge_relays_messages_and_keeps_stdout_clean() {
    let server = TestServer::start().await;
    let agent = server.agent("bridged").await;
    let (stdout, _) = bridge(
        &server,
        &agent,
        &[
            initialize_line(1),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "list_allowed", "arguments": {}}}),
        ],
    )
    .await;
    let replies: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON-RPC on stdout: {l}")))
        .collect();
    assert_eq!(replies.len(), 3, "{stdout}");
    let by_id = |id: i64| {
        replies
            .iter()
            .find(|r| r["id"] == json!(id))
            .unwrap_or_else(|| panic!("no reply {id}: {stdout}"))
    };
    assert_eq!(by_id(1)["result"]["serverInfo"]["name"], "taskharbor");
    assert_eq!(
        by_id(2)["result"]["tools"].as_array().map(Vec::len),
        Some(ALL_TOOLS.len())
    );
    assert_eq!(by_id(3)["result"]["isError"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_bridge_reports_a_refused_token_without_revealing_it() {
    let server = TestServer::start().await;
    let bogus = format!("th_{}", "q".repeat(40));
    let (stdout, stderr) = bridge(
        &server,
        &bogus,
        &[
            initialize_line(1),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        ],
    )
    .await;
    let replies: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(replies.len(), 2, "{stdout}");
    for reply in &replies {
        let message = reply["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("401"), "{reply}");
    }
    assert!(
        !stdout.contains(&bogus) && !stderr.contains(&bogus),
        "the token leaked"
    );
    assert!(stderr.contains("401"), "diagnostics go to stderr: {stderr}");
}

// ---- the official Python SDK ----

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("TASKHARBOR_MCP_PYTHON") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("taskharbor/venv-mcp/bin/python")
}

/// Runs one scenario of the Python client; returns its JSON output.
async fn python_client(scenario: &str, args: &[String], tokens: &[(&str, &str)]) -> Value {
    let python = python();
    assert!(
        python.exists(),
        "the Python MCP SDK is missing: no interpreter at {}. Run .ci/mcp-prereqs.sh \
         (or set TASKHARBOR_MCP_PYTHON to a python with `mcp` installed).",
        python.display()
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/mcp_client/taskharbor_mcp_client.py"
    );
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(script)
        .arg(scenario)
        .args(args)
        .kill_on_drop(true);
    for (name, value) in tokens {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the Python client finished in time")
        .expect("the Python client ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python {scenario} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("python {scenario} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

#[track_caller]
fn assert_agent_loop(out: &Value, item: i64) {
    assert_eq!(out["server"], "taskharbor", "{out}");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tools, ALL_TOOLS, "{out}");
    assert_eq!(out["annotated"], json!(true), "{out}");
    assert_eq!(out["guide_mentions_checkpoint"], json!(true), "{out}");
    assert_eq!(out["templates"], json!(["taskharbor://items/{id}"]));
    assert_eq!(out["claim_next"]["is_error"], json!(false), "{out}");
    assert_eq!(out["claim_next"]["value"]["id"], json!(item), "{out}");
    assert_eq!(out["resource_item_id"], json!(item), "{out}");
    assert_eq!(out["progress"]["is_error"], json!(false), "{out}");
    assert_eq!(out["progress"]["value"]["kind"], "progress", "{out}");
    assert_eq!(out["complete"]["value"]["status"], "done", "{out}");
    assert_eq!(out["after"]["value"]["status"], "done", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_runs_the_agent_loop_over_streamable_http() {
    let server = TestServer::start().await;
    let board = server.board("PYH").await;
    let item = server.item(board, "python over http").await;
    let agent = server.agent("py-http").await;
    let out = python_client(
        "http-loop",
        &["--url".into(), server.url("/mcp")],
        &[("TASKHARBOR_TOKEN", &agent)],
    )
    .await;
    assert_agent_loop(&out, item);
    assert_eq!(server.item_json(item).await["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_runs_the_agent_loop_over_the_stdio_bridge() {
    let server = TestServer::start().await;
    let board = server.board("PYS").await;
    let item = server.item(board, "python over stdio").await;
    let agent = server.agent("py-stdio").await;
    let out = python_client(
        "stdio-loop",
        &[
            "--url".into(),
            server.url("/mcp"),
            "--bin".into(),
            env!("CARGO_BIN_EXE_taskharbor").into(),
        ],
        &[("TASKHARBOR_TOKEN", &agent)],
    )
    .await;
    assert_agent_loop(&out, item);
    let comments = server
        .get(&server.admin, &format!("/api/items/{item}/comments"))
        .await
        .expect(200);
    assert_eq!(
        comments["comments"][0]["author"]["name"], "py-stdio",
        "the bridge acted as the token's worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_default_client_speaks_the_stateless_protocol_too() {
    let server = TestServer::start().await;
    let board = server.board("PYM").await;
    let item = server.item(board, "python, modern").await;
    let agent = server.agent("py-modern").await;
    let out = python_client(
        "modern-loop",
        &["--url".into(), server.url("/mcp")],
        &[("TASKHARBOR_TOKEN", &agent)],
    )
    .await;
    assert_eq!(out["protocol_version"], "2026-07-28", "{out}");
    assert_eq!(out["tools"], json!(ALL_TOOLS), "{out}");
    assert_eq!(out["claimed_id"], json!(item), "{out}");
    assert_eq!(out["progress_error"], json!(false), "{out}");
    assert_eq!(out["status"], "done", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_two_clients_racing_claim_next_never_get_the_same_item() {
    let server = TestServer::start().await;
    let board = server.board("PYR").await;
    let mut items = Vec::new();
    for n in 0..12 {
        items.push(server.item(board, &format!("job {n}")).await);
    }
    let a = server.agent("racer-a").await;
    let b = server.agent("racer-b").await;
    let out = python_client(
        "race",
        &[
            "--url".into(),
            server.url("/mcp"),
            "--rounds".into(),
            "8".into(),
        ],
        &[("TASKHARBOR_TOKEN", &a), ("TASKHARBOR_TOKEN_B", &b)],
    )
    .await;
    let ids = |key: &str| -> Vec<i64> {
        out[key]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(Value::as_i64)
            .collect()
    };
    let (got_a, got_b) = (ids("a"), ids("b"));
    let mut all: Vec<i64> = got_a.iter().chain(&got_b).copied().collect();
    all.sort_unstable();
    let total = all.len();
    all.dedup();
    assert_eq!(all.len(), total, "an item was claimed twice: {out}");
    assert_eq!(total, items.len(), "every item was claimed once: {out}");
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both raced: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_is_refused_without_a_token_and_with_a_revoked_one() {
    let server = TestServer::start().await;
    let (id, secret) = token_with_id(&server, "py-revoked", "agent", &["queue:write"]).await;
    Mcp::connect(&server, &secret).await;
    server
        .delete(&server.admin, &format!("/api/tokens/{id}"))
        .await
        .expect(200);
    let out = python_client(
        "refused",
        &["--url".into(), server.url("/mcp")],
        &[("TASKHARBOR_TOKEN", &secret)],
    )
    .await;
    for case in ["no_token", "revoked"] {
        assert_eq!(out[case]["connected"], json!(false), "{case}: {out}");
        assert_eq!(out[case]["http"]["status"], json!(401), "{case}: {out}");
        assert_eq!(
            out[case]["http"]["www_authenticate"], "Bearer",
            "{case}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_read_token_cannot_call_write_tools() {
    let server = TestServer::start().await;
    let board = server.board("PYRO").await;
    let item = server.item(board, "read only").await;
    let reader = server
        .token("py-reader", "agent", &["queue:read"], None)
        .await;
    let out = python_client(
        "read-only",
        &[
            "--url".into(),
            server.url("/mcp"),
            "--item".into(),
            item.to_string(),
        ],
        &[("TASKHARBOR_TOKEN", &reader)],
    )
    .await;
    assert_eq!(out["tools"], json!(READ_TOOLS), "{out}");
    assert_eq!(out["get_item"]["is_error"], json!(false), "{out}");
    for tool in ["claim", "create_item"] {
        assert_eq!(out[tool]["is_error"], json!(true), "{tool}: {out}");
        assert_eq!(
            out[tool]["value"]["error"]["code"], "forbidden",
            "{tool}: {out}"
        );
    }
    assert!(server.item_json(item).await["claim"].is_null());
}

#[tokio::test]
async fn a_report_whose_link_is_refused_leaves_nothing_behind() {
    let server = TestServer::start().await;
    let board = server.board("ONE").await;
    let item = server.item(board, "feature").await;
    let agent = server.agent("finder").await;
    let mut mcp = Mcp::connect(&server, &agent).await;
    let claimed = mcp.call("claim", json!({"item_id": item})).await.ok();
    let token = claimed["claim"]["token"].as_i64().expect("claim token");
    let before = server.events(item).await;

    // A stale claim token: the blocking link is refused, and with it the
    // defect that would have blocked the item (one command, one savepoint).
    mcp.call(
        "report_defect",
        json!({"item_id": item, "title": "crash on empty input",
               "blocking": true, "claim_token": token + 1}),
    )
    .await
    .err("lease_superseded");
    let listed = server
        .get(&server.admin, &format!("/api/boards/{board}/items"))
        .await
        .expect(200);
    let ids: Vec<i64> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![item], "no defect was left behind: {listed}");
    assert_eq!(server.events(item).await, before, "no history either");
    assert!(
        server.item_json(item).await["blocked_by"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}
