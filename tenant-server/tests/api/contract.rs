//! The contract tells the truth (issue 13): the OpenAPI document states what
//! the server enforces, schemathesis finds nothing against the real binary,
//! board admins stay in their lane, input mistakes get sentences, and the
//! command line behaves.

use crate::support::TestServer;
use reqwest::Method;
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn doc() -> Value {
    serde_json::from_str(taskharbor::api::ops::openapi_json()).expect("document")
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn only_path_template_names_are_path_parameters_and_filters_are_optional_queries() {
    let doc = doc();
    let mut queries = 0;
    for (method, path, op) in operations(&doc) {
        for p in op["parameters"].as_array().cloned().unwrap_or_default() {
            let name = p["name"].as_str().expect("name");
            let in_template = path.contains(&format!("{{{name}}}"));
            assert_eq!(
                p["in"] == "path",
                in_template,
                "{method} {path}: {name} is declared in {}",
                p["in"]
            );
            if p["in"] == "query" {
                queries += 1;
                assert_eq!(p["required"], json!(false), "{method} {path} {name}");
            }
        }
    }
    assert!(queries >= 20, "only {queries} query parameters");
    let list_items = &doc["paths"]["/api/boards/{id}/items"]["get"]["parameters"];
    for name in [
        "status",
        "kind",
        "label",
        "claimed_by",
        "q",
        "limit",
        "cursor",
    ] {
        assert!(
            list_items
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == name && p["in"] == "query"),
            "{name} is not a query parameter of list_items"
        );
    }
}

#[test]
fn the_document_states_the_bounds_the_server_enforces() {
    use taskharbor::domain::limits as l;
    let doc = doc();
    let prop = |schema: &str, field: &str| {
        doc["components"]["schemas"][schema]["properties"][field].clone()
    };
    assert_eq!(
        prop("PatchBoardRequest", "claim_limit")["minimum"],
        json!(l::CLAIM_LIMIT_MIN)
    );
    assert_eq!(
        prop("PatchBoardRequest", "claim_limit")["maximum"],
        json!(l::CLAIM_LIMIT_MAX)
    );
    assert_eq!(
        prop("CreateItemRequest", "priority")["maximum"],
        json!(l::PRIORITY_MAX)
    );
    assert_eq!(
        prop("CreateItemRequest", "title")["maxLength"],
        json!(l::TITLE_MAX)
    );
    assert_eq!(
        prop("PatchItemRequest", "body")["maxLength"],
        json!(l::BODY_MAX)
    );
    assert_eq!(
        prop("CreateItemRequest", "labels")["maxItems"],
        json!(l::LABELS_MAX)
    );
    assert_eq!(
        prop("CreateItemRequest", "labels")["items"]["maxLength"],
        json!(l::LABEL_MAX)
    );
    assert_eq!(
        prop("PatchBoardRequest", "agent_lease_seconds")["maximum"],
        json!(l::LEASE_SECONDS_MAX)
    );
    assert_eq!(
        prop("CreateLaneRequest", "wip_limit")["maximum"],
        json!(l::WIP_LIMIT_MAX)
    );
    assert_eq!(
        prop("PatchLaneRequest", "position")["maximum"],
        json!(l::LANE_POSITION_MAX)
    );
    assert_eq!(
        prop("CreateBoardRequest", "key")["pattern"],
        json!(l::BOARD_KEY_PATTERN)
    );
    // Every string a request sends is bounded or enumerated, and every
    // request object refuses unknown fields.
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if !name.ends_with("Request") && name != "WorkerSpec" {
            continue;
        }
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        for (field, p) in schema["properties"].as_object().expect("properties") {
            let is_string = p["type"] == "string"
                || p["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!("string")));
            if is_string && field != "expires_at" {
                assert!(
                    p.get("maxLength").is_some(),
                    "{name}.{field} has no maxLength: {p}"
                );
            }
        }
    }
}

#[test]
fn every_operation_documents_headers_and_the_statuses_it_can_answer() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        if !path.starts_with("/api/") {
            continue;
        }
        let responses = op["responses"].as_object().expect("responses");
        for code in ["400", "401", "403", "404", "429"] {
            assert!(responses.contains_key(code), "{method} {path} lacks {code}");
        }
        let params: Vec<String> = op["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| p["name"].as_str().unwrap_or("").to_owned())
            .collect();
        if op.get("requestBody").is_some() {
            assert!(
                responses.contains_key("413") && responses.contains_key("422"),
                "{method} {path}"
            );
        }
        if method == "POST" {
            assert!(
                params.contains(&"Idempotency-Key".to_owned()),
                "{method} {path}"
            );
        }
        if params.contains(&"X-Claim-Token".to_owned()) {
            assert!(responses.contains_key("409"), "{method} {path}");
        }
    }
    let patch_item = &doc["paths"]["/api/items/{id}"]["patch"];
    let names: Vec<&str> = patch_item["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"If-Match") && names.contains(&"X-Claim-Token"),
        "{names:?}"
    );
    let link = &doc["paths"]["/api/boards"]["post"]["responses"]["201"]["links"]["create_item"];
    assert_eq!(link["operationId"], "create_item");
}

#[tokio::test]
async fn a_null_body_where_the_document_says_nullable_is_accepted() {
    let server = TestServer::start().await;
    let board = server.board("NUL").await;
    let item = server.item(board, "claim me").await;
    let reply = server
        .send(
            Some(&server.admin),
            Method::POST,
            &format!("/api/items/{item}/claim"),
            Some(Value::Null),
            &[],
        )
        .await;
    reply.expect(200);
}

#[tokio::test]
async fn unknown_fields_are_400_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let board = server.board("UNK").await;
    let reply = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "x", "agent_redy": true}),
        )
        .await;
    reply.expect_error(400, "invalid_request");
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("\"agent_redy\"") && message.contains("agent_ready"),
        "{message}"
    );
    let items = server
        .get(&server.admin, &format!("/api/boards/{board}/items"))
        .await
        .expect(200);
    assert_eq!(items["items"], json!([]), "nothing was created");
    let nested = server
        .post(&server.admin, "/api/tokens", json!({"name": "n", "worker": {"name": "w", "kind": "agent", "role": "x"}, "scopes": ["queue:read"]}))
        .await;
    nested.expect_error(400, "invalid_request");
    assert!(
        nested.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("\"role\""),
        "{}",
        nested.body
    );
}

#[tokio::test]
async fn control_characters_are_refused_in_names_and_titles_but_bodies_keep_newlines() {
    let server = TestServer::start().await;
    let board = server.board("CTL").await;
    for title in ["a\nb", "nul\u{0}", "\u{1b}[31mred"] {
        server
            .post(
                &server.admin,
                &format!("/api/boards/{board}/items"),
                json!({"title": title}),
            )
            .await
            .expect_error(422, "validation_failed");
    }
    server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/lanes"),
            json!({"name": "QA\u{7}", "role": "review"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let item = server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/items"),
            json!({"title": "ok", "body": "line 1\nline 2"}),
        )
        .await
        .expect(201);
    assert_eq!(item["body"], "line 1\nline 2");
}

#[tokio::test]
async fn lanes_are_unique_by_name_capped_per_board_and_metrics_key_them_by_id() {
    let server = TestServer::start().await;
    let board = server.board("LAN").await;
    let lanes = format!("/api/boards/{board}/lanes");
    server
        .post(
            &server.admin,
            &lanes,
            json!({"name": "ready", "role": "ready"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let existing = server.lanes(board).await.len();
    for i in existing..50 {
        server
            .post(
                &server.admin,
                &lanes,
                json!({"name": format!("Lane {i}"), "role": "review", "wip_limit": 3}),
            )
            .await
            .expect(201);
    }
    let over = server
        .post(
            &server.admin,
            &lanes,
            json!({"name": "one too many", "role": "review"}),
        )
        .await;
    over.expect_error(422, "validation_failed");
    assert!(
        over.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("50"),
        "{}",
        over.body
    );
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("lane=\"Lane_7\",lane_id=\""), "{text}");
}

#[tokio::test]
async fn error_messages_are_sentences_about_the_input_never_rust_types() {
    let server = TestServer::start().await;
    let board = server.board("MSG").await;
    let item = server.item(board, "x").await;
    type Probe = (Method, String, Option<Value>, Vec<(&'static str, String)>);
    let probes: Vec<Probe> = vec![
        (
            Method::POST,
            "/api/claim-next".into(),
            Some(json!(5)),
            vec![],
        ),
        (
            Method::POST,
            "/api/claim-next".into(),
            Some(json!({"board_id": "one"})),
            vec![],
        ),
        (
            Method::POST,
            "/api/claim-next".into(),
            Some(json!({"kinds": ["epic"]})),
            vec![],
        ),
        (Method::GET, "/api/items/abc".into(), None, vec![]),
        (
            Method::GET,
            format!("/api/boards/{board}/items?limit=lots"),
            None,
            vec![],
        ),
        (
            Method::GET,
            format!("/api/boards/{board}/items?status=doing"),
            None,
            vec![],
        ),
        (
            Method::POST,
            format!("/api/boards/{board}/items"),
            Some(json!({})),
            vec![],
        ),
        (
            Method::POST,
            format!("/api/items/{item}/heartbeat"),
            None,
            vec![("x-claim-token", "7".into())],
        ),
        (
            Method::POST,
            format!("/api/items/{item}/claim"),
            None,
            vec![("x-claim-token", "seven".into())],
        ),
    ];
    for (method, path, body, headers) in probes {
        let reply = server
            .send(Some(&server.admin), method.clone(), &path, body, &headers)
            .await;
        let message = reply.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(!message.is_empty(), "{method} {path}: {}", reply.body);
        for leak in [
            "struct",
            "i64",
            "u64",
            "None",
            "Some(",
            "Cannot parse",
            "ClaimNextRequest",
            "ItemKind",
            "at line",
        ] {
            assert!(
                !message.contains(leak),
                "{method} {path}: {leak:?} leaked in {message:?}"
            );
        }
    }
}

/// The permission matrix of minting: who × whose worker.
#[tokio::test]
async fn board_admins_mint_only_for_new_and_own_workers() {
    let server = TestServer::start().await;
    let board = server.board("OWN").await;
    let other_board = server.board("OTH").await;
    let board_admin = server
        .token("lead", "human", &["board:admin"], Some(board))
        .await;
    let other_admin = server
        .token("other-lead", "human", &["board:admin"], Some(other_board))
        .await;
    let queue = server
        .token("worker", "agent", &["queue:write"], Some(board))
        .await;
    // Workers: one the board admin creates (its own), one another board's
    // admin creates (someone else's), and the instance admin's own ("admin").
    let mint = |token: &str, worker: &str| {
        let token = token.to_owned();
        let body = json!({"name": format!("t-{worker}"), "worker": {"name": worker, "kind": "agent"}, "scopes": ["queue:write"], "board_id": board});
        let server = &server;
        async move { server.post(&token, "/api/tokens", body).await }
    };
    mint(&board_admin, "own-bot").await.expect(201);
    server
        .post(&other_admin, "/api/tokens", json!({"name": "x", "worker": {"name": "their-bot", "kind": "agent"}, "scopes": ["queue:write"], "board_id": other_board}))
        .await
        .expect(201);
    let admin_worker = |token: &str| {
        let body = json!({"name": "t-admin", "worker": {"name": "admin", "kind": "human"}, "scopes": ["queue:write"], "board_id": board});
        let token = token.to_owned();
        let server = &server;
        async move { server.post(&token, "/api/tokens", body).await }
    };
    // Board admin: new and own yes; someone else's and the admin's no.
    mint(&board_admin, "new-bot").await.expect(201);
    mint(&board_admin, "own-bot").await.expect(201);
    mint(&board_admin, "their-bot")
        .await
        .expect_error(403, "forbidden");
    admin_worker(&board_admin)
        .await
        .expect_error(403, "forbidden");
    // Queue token: nothing.
    mint(&queue, "fresh-bot")
        .await
        .expect_error(403, "forbidden");
    mint(&queue, "own-bot").await.expect_error(403, "forbidden");
    mint(&queue, "their-bot")
        .await
        .expect_error(403, "forbidden");
    admin_worker(&queue).await.expect_error(403, "forbidden");
    // Instance admin: every cell.
    mint(&server.admin, "admin-new-bot").await.expect(201);
    mint(&server.admin, "own-bot").await.expect(201);
    mint(&server.admin, "their-bot").await.expect(201);
    admin_worker(&server.admin).await.expect(201);
    // A refused mint created nothing: the admin's worker holds no token of the board admin's.
    let listed = server.get(&board_admin, "/api/tokens").await.expect(200);
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["worker"]["name"].as_str())
        .collect();
    assert!(!names.contains(&"fresh-bot"), "{names:?}");
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_taskharbor")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

#[test]
fn a_taken_port_creates_nothing_and_admin_recover_mints_a_working_token() {
    let dir = tempfile::tempdir().expect("dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = Command::new(binary())
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.path())
        .env_remove("TASKHARBOR_BOOTSTRAP_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("th_"),
        "a token was printed and lost: {stdout}"
    );
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(
        !dir.path().join("taskharbor.db").exists(),
        "the database was created before binding"
    );
    drop(taken);

    // A real first start prints the token; pretend it was lost.
    let port = free_port();
    let mut server = Command::new(binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env_remove("TASKHARBOR_BOOTSTRAP_TOKEN")
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut first = [0u8; 200];
    let _ = server.stdout.take().expect("stdout").read(&mut first);
    let recovered = Command::new(binary())
        .args(["admin", "recover", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("recover");
    assert!(
        recovered.status.success(),
        "{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    let secret = String::from_utf8_lossy(&recovered.stdout).trim().to_owned();
    assert!(secret.starts_with("th_"), "{secret}");
    let me = blocking_get_me(port, &secret);
    let _ = server.kill();
    let _ = server.wait();
    assert!(me.contains("\"admin\""), "{me}");
}

/// A tiny HTTP GET without an async runtime (this test is synchronous).
fn blocking_get_me(port: u16, token: &str) -> String {
    {
        use std::io::{Read, Write};
        for _ in 0..100 {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let request = format!(
                    "GET /api/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(request.as_bytes());
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        String::new()
    }
}

#[test]
fn the_command_line_speaks_sentences_per_subcommand_and_survives_a_closed_pipe() {
    let help = Command::new(binary())
        .args(["token", "create", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--worker") && !help.contains("--listen") && !help.contains("--readers"),
        "{help}"
    );
    let serve_help = Command::new(binary())
        .args(["serve", "--help"])
        .output()
        .expect("help");
    assert!(String::from_utf8_lossy(&serve_help.stdout).contains("--listen"));

    let dir = tempfile::tempdir().expect("dir");
    let bad = Command::new(binary())
        .args([
            "token",
            "create",
            "--name",
            " ",
            "--worker",
            "w",
            "--scope",
            "admin",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("token create");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("name must not be empty") && !stderr.contains("FieldErrors"),
        "{stderr}"
    );

    // `taskharbor openapi | head -c 10`: the reader leaves early.
    let mut child = Command::new(binary())
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openapi");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut ten = [0u8; 10];
    stdout.read_exact(&mut ten).expect("read");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = Command::new(binary())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log",
            "info",
            "--data-dir",
        ])
        .arg(dir.path())
        .env(
            "TASKHARBOR_BOOTSTRAP_TOKEN",
            "th_ColourTestAdminToken_abcdefghijklmnopqrstu",
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("listening") {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("listening"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI codes in piped logs: {text:?}"
    );
}

fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("TASKHARBOR_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("taskharbor/venv-schemathesis/bin/st")
}

/// Schemathesis (pinned in .ci/schemathesis-prereqs.sh) against the real
/// binary: every check, positive and negative data, the stateful links,
/// a fixed seed and a small budget (about 2,500 cases in 1 to 2 minutes on 2 cores).
/// The developers' long run is the README's "Fuzzing the API contract".
#[test]
fn schemathesis_finds_no_failure_in_any_operation() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "{} is missing: run .ci/schemathesis-prereqs.sh (or set TASKHARBOR_SCHEMATHESIS)",
        st.display()
    );
    let examples = std::env::var("TASKHARBOR_FUZZ_EXAMPLES").unwrap_or_else(|_| "10".into());
    let dir = tempfile::tempdir().expect("dir");
    let port = 18080;
    let token = "th_SchemathesisAdminToken_abcdefghijklmnopqrstuv";
    let contract = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract");
    // The fuzzer invents webhook URLs and sync `api_url`s (and the server
    // must allow private targets for its own receivers), so server and
    // fuzzer share a fresh network namespace with loopback only: whatever
    // the generated cases point at, no packet leaves this machine.
    let script = r#"set -u
ip link set lo up
"$TH_BIN" --listen "127.0.0.1:$TH_PORT" --data-dir "$TH_DIR" >/dev/null 2>&1 &
server=$!
cd "$TH_CONTRACT"
"$TH_ST" --config-file schemathesis.toml run "http://127.0.0.1:$TH_PORT/api/openapi.json" \
  --wait-for-schema 30 --seed 1 --max-examples "$TH_EXAMPLES" --request-timeout 10 --no-color \
  -H "Authorization: Bearer $TASKHARBOR_BOOTSTRAP_TOKEN"
status=$?
kill "$server"; wait "$server"
exit $status
"#;
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", script])
        .env("TH_BIN", binary())
        .env("TH_PORT", port.to_string())
        .env("TH_DIR", dir.path())
        .env("TH_CONTRACT", contract)
        .env("TH_ST", &st)
        .env("TH_EXAMPLES", &examples)
        .env("PYTHONPATH", contract)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("TASKHARBOR_BOOTSTRAP_TOKEN", token)
        .env("TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS", "true")
        .env("TASKHARBOR_RATE_LIMIT", "0")
        .env("RUST_LOG", "off")
        .output()
        .expect(
            "unshare (util-linux) runs the server and schemathesis in their own network namespace",
        );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| {
                rest.trim()
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let selected = count("Selected:");
    assert!(
        !selected.is_empty() && selected == count("Tested:"),
        "not every operation was tested:\n{text}"
    );
    assert!(!text.contains("failures,"), "{text}");
}
