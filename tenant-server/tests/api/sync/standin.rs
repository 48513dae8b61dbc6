//! A stateful stand-in for GitHub's and GitLab's issue APIs: a real HTTP
//! server on loopback. GitHub answers are built from the example objects
//! of GitHub's published OpenAPI description (@octokit/openapi) and every
//! answer is recorded, so a test can check them against that description;
//! GitLab answers follow its REST v4 documentation. Faults (5xx, applied-
//! then-failed, dropped connections, rate limits) are scripted per call.

// Handlers answer errors as ready-made responses; their size is no concern in a test stand-in.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub const TOKEN: &str = "ghp_standinTokenForTests0123456789";

/// Where .ci/sync-prereqs.sh installs the npm packages.
pub fn node_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    let dir = cache.join("taskharbor/node-sync");
    assert!(
        dir.join("node_modules/@octokit/openapi").exists(),
        "run .ci/sync-prereqs.sh first (missing {})",
        dir.display()
    );
    dir
}

/// GitHub's OpenAPI description (parsed once).
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = node_dir().join("node_modules/@octokit/openapi/generated/api.github.com.json");
        let text = std::fs::read_to_string(&path).expect("read the OpenAPI description");
        serde_json::from_str(&text).expect("parse the OpenAPI description")
    })
}

fn example(name: &str) -> Value {
    openapi()["components"]["examples"][name]["value"].clone()
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub number: i64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub closed: bool,
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
    pub is_pull_request: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: i64,
    pub number: i64,
    pub body: String,
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub kind: &'static str,
    pub at: Instant,
    pub body: String,
}

/// An answer, for checking against the OpenAPI description.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: &'static str,
    pub template: &'static str,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug)]
pub enum Fault {
    /// Let this call through (to aim a later fault at the next call).
    Pass,
    /// Answer this status without applying the request.
    Status(u16),
    /// Apply the request, then answer this status (an unknown outcome).
    ApplyThenStatus(u16),
    /// Apply the request, then drop the connection without an answer.
    ApplyThenDrop,
    /// Apply, tell the test, then never answer (the test kills the client).
    ApplyThenHang(tokio::sync::oneshot::Sender<()>),
    /// 403 with `x-ratelimit-remaining: 0` and a reset this many seconds ahead.
    RateLimit(i64),
    /// 429 with `Retry-After`.
    RetryAfter(i64),
}

#[derive(Default)]
pub struct Inner {
    pub repo: String,
    pub issues: BTreeMap<i64, Issue>,
    pub comments: Vec<Comment>,
    next_number: i64,
    next_comment: i64,
    pub requests: Vec<Request>,
    pub recorded: Vec<Recorded>,
    faults: VecDeque<(&'static str, Fault)>,
    /// Until then (epoch s) every request gets 403 rate-limited.
    blocked_until: i64,
    pub requests_while_blocked: usize,
    clock: i64,
}

#[derive(Clone)]
pub struct Remote {
    pub inner: Arc<Mutex<Inner>>,
    pub base: String,
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn stamp(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Inner {
    /// Strictly increasing seconds, so `since=` is exact in tests.
    fn tick(&mut self) -> String {
        self.clock = self.clock.max(now_secs()).max(self.clock + 1);
        stamp(self.clock)
    }

    pub fn add_issue(
        &mut self,
        title: &str,
        body: &str,
        labels: &[&str],
        author: &str,
        pr: bool,
    ) -> i64 {
        self.next_number += 1;
        let at = self.tick();
        let number = self.next_number;
        self.issues.insert(
            number,
            Issue {
                number,
                title: title.into(),
                body: body.into(),
                labels: labels.iter().map(|s| (*s).to_owned()).collect(),
                closed: false,
                author: author.into(),
                created_at: at.clone(),
                updated_at: at,
                is_pull_request: pr,
                deleted: false,
            },
        );
        number
    }

    /// An edit made on the provider by a person.
    pub fn edit(&mut self, number: i64, f: impl FnOnce(&mut Issue)) {
        let at = self.tick();
        if let Some(issue) = self.issues.get_mut(&number) {
            f(issue);
            issue.updated_at = at;
        }
    }

    /// A new comment; like both providers, it updates its issue too.
    pub fn add_comment(&mut self, number: i64, body: &str, author: &str) -> i64 {
        self.next_comment += 1;
        let id = self.next_comment;
        let at = self.tick();
        self.comments.push(Comment {
            id,
            number,
            body: body.into(),
            author: author.into(),
            created_at: at.clone(),
            updated_at: at.clone(),
        });
        if let Some(issue) = self.issues.get_mut(&number) {
            issue.updated_at = at;
        }
        id
    }

    /// A comment edited on the provider (by a person, or by our PATCH).
    pub fn edit_comment(&mut self, id: i64, body: &str) {
        let at = self.tick();
        if let Some(c) = self.comments.iter_mut().find(|c| c.id == id) {
            c.body = body.into();
            c.updated_at = at;
        }
    }

    pub fn delete_comment(&mut self, id: i64) {
        self.comments.retain(|c| c.id != id);
    }

    pub fn comment(&self, id: i64) -> Option<Comment> {
        self.comments.iter().find(|c| c.id == id).cloned()
    }

    pub fn count(&self, kind: &str) -> usize {
        self.requests.iter().filter(|r| r.kind == kind).count()
    }

    pub fn mutations(&self) -> Vec<&Request> {
        self.requests.iter().filter(|r| r.method != "GET").collect()
    }
}

impl Remote {
    pub async fn start(repo: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stand-in");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let remote = Self {
            inner: Arc::new(Mutex::new(Inner {
                repo: repo.into(),
                ..Inner::default()
            })),
            base,
        };
        let app = Router::new()
            .route("/repos/{owner}/{repo}", get(gh_repo))
            .route("/repos/{owner}/{repo}/issues", get(gh_list).post(gh_create))
            .route(
                "/repos/{owner}/{repo}/issues/{number}",
                get(gh_get).patch(gh_update),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(gh_comments).post(gh_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments",
                get(gh_repo_comments),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{comment_id}",
                axum::routing::patch(gh_update_comment),
            )
            .route("/api/v4/projects/{project}", get(gl_project))
            .route(
                "/api/v4/projects/{project}/issues",
                get(gl_list).post(gl_create),
            )
            .route(
                "/api/v4/projects/{project}/issues/{number}",
                get(gl_get).put(gl_update),
            )
            .route(
                "/api/v4/projects/{project}/issues/{number}/notes",
                get(gl_notes).post(gl_note),
            )
            .route(
                "/api/v4/projects/{project}/issues/{number}/notes/{note_id}",
                axum::routing::put(gl_update_note),
            )
            .with_state(remote.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        remote
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail_next(&self, kind: &'static str, fault: Fault) {
        self.lock().faults.push_back((kind, fault));
    }

    pub fn block_for(&self, secs: i64) {
        self.lock().blocked_until = now_secs() + secs;
    }

    pub fn gitlab_url(&self) -> String {
        format!("{}/api/v4", self.base)
    }

    /// Open issues (not PRs, not deleted).
    pub fn live_issues(&self) -> Vec<Issue> {
        self.lock()
            .issues
            .values()
            .filter(|i| !i.deleted && !i.is_pull_request)
            .cloned()
            .collect()
    }
}

type Answer = Result<Response, Response>;

fn github_error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()})),
    )
        .into_response()
}

enum Gate {
    Go,
    /// Apply, then answer with this instead.
    After(Fault),
}

/// Records the request, checks auth, rate limits and scripted faults.
fn gate(
    remote: &Remote,
    kind: &'static str,
    method: &Method,
    _path: &str,
    headers: &HeaderMap,
    body: &[u8],
    gitlab: bool,
) -> Result<Gate, Response> {
    let mut s = remote.lock();
    s.requests.push(Request {
        method: method.to_string(),
        kind,
        at: Instant::now(),
        body: String::from_utf8_lossy(body).into_owned(),
    });
    let authed = if gitlab {
        headers.get("private-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
    } else {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        auth == format!("Bearer {TOKEN}") || auth == format!("token {TOKEN}")
    };
    if !authed {
        return Err(if gitlab {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "401 Unauthorized"})),
            )
                .into_response()
        } else {
            github_error(401, "Bad credentials")
        });
    }
    let now = now_secs();
    if s.blocked_until > now {
        s.requests_while_blocked += 1;
        let reset = s.blocked_until;
        let mut r = github_error(403, "API rate limit exceeded for user ID 1.");
        let h = r.headers_mut();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap_or(HeaderValue::from_static("0")),
        );
        return Err(r);
    }
    let position = s.faults.iter().position(|(k, _)| *k == kind);
    let Some(position) = position else {
        return Ok(Gate::Go);
    };
    let Some((_, fault)) = s.faults.remove(position) else {
        return Ok(Gate::Go);
    };
    match fault {
        Fault::Pass => Ok(Gate::Go),
        Fault::Status(code) => Err(github_error(code, "scripted failure")),
        Fault::RateLimit(secs) => {
            s.blocked_until = now + secs;
            let mut r = github_error(403, "API rate limit exceeded for user ID 1.");
            let h = r.headers_mut();
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            h.insert(
                "x-ratelimit-reset",
                HeaderValue::from_str(&(now + secs).to_string())
                    .unwrap_or(HeaderValue::from_static("0")),
            );
            Err(r)
        }
        Fault::RetryAfter(secs) => {
            s.blocked_until = now + secs;
            let mut r = github_error(429, "Too many requests");
            r.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&secs.to_string()).unwrap_or(HeaderValue::from_static("1")),
            );
            Err(r)
        }
        other => Ok(Gate::After(other)),
    }
}

/// Turns the real answer into the scripted unknown outcome, if any.
async fn finish(gate: Gate, answer: Response) -> Response {
    match gate {
        Gate::Go => answer,
        Gate::After(Fault::ApplyThenStatus(code)) => github_error(code, "applied, then failed"),
        Gate::After(Fault::ApplyThenHang(tell)) => {
            let _ = tell.send(());
            std::future::pending::<()>().await;
            answer
        }
        // Dropping the connection: the task serving it ends without an answer.
        Gate::After(_) => panic!("stand-in drops the connection (scripted)"),
    }
}

fn record(
    remote: &Remote,
    method: &'static str,
    template: &'static str,
    status: u16,
    body: &Value,
) {
    remote.lock().recorded.push(Recorded {
        method,
        template,
        status,
        body: body.clone(),
    });
}

fn check_repo(remote: &Remote, owner: &str, repo: &str) -> Result<(), Response> {
    if format!("{owner}/{repo}") == remote.lock().repo {
        Ok(())
    } else {
        Err(github_error(404, "Not Found"))
    }
}

// ---------- GitHub ----------

fn gh_issue_json(remote: &Remote, i: &Issue) -> Value {
    let mut v = example("issue");
    let repo = remote.lock().repo.clone();
    let api = format!("{}/repos/{repo}", remote.base);
    v["id"] = json!(1000 + i.number);
    v["number"] = json!(i.number);
    v["url"] = json!(format!("{api}/issues/{}", i.number));
    v["repository_url"] = json!(api);
    v["html_url"] = json!(format!("https://github.com/{repo}/issues/{}", i.number));
    v["title"] = json!(i.title);
    v["body"] = json!(i.body);
    v["state"] = json!(if i.closed { "closed" } else { "open" });
    v["state_reason"] = if i.closed {
        json!("completed")
    } else {
        Value::Null
    };
    v["closed_at"] = if i.closed {
        json!(i.updated_at)
    } else {
        Value::Null
    };
    v["created_at"] = json!(i.created_at);
    v["updated_at"] = json!(i.updated_at);
    v["user"]["login"] = json!(i.author);
    let label_template = example("label");
    v["labels"] = Value::Array(
        i.labels
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let mut l = label_template.clone();
                l["id"] = json!(n + 1);
                l["name"] = json!(name);
                l["url"] = json!(format!("{api}/labels/{name}"));
                l
            })
            .collect(),
    );
    if i.is_pull_request {
        v["pull_request"] = json!({"url": format!("{api}/pulls/{}", i.number), "html_url": null, "diff_url": null, "patch_url": null});
    } else if let Some(obj) = v.as_object_mut() {
        obj.remove("pull_request");
    }
    v
}

fn gh_comment_json(remote: &Remote, c: &Comment) -> Value {
    let mut v = example("issue-comment");
    let repo = remote.lock().repo.clone();
    v["id"] = json!(c.id);
    v["body"] = json!(c.body);
    v["user"]["login"] = json!(c.author);
    v["issue_url"] = json!(format!("{}/repos/{repo}/issues/{}", remote.base, c.number));
    v["url"] = json!(format!(
        "{}/repos/{repo}/issues/comments/{}",
        remote.base, c.id
    ));
    // GitHub links a pull request's comments under /pull/.
    let on_pr = remote
        .lock()
        .issues
        .get(&c.number)
        .is_some_and(|i| i.is_pull_request);
    v["html_url"] = json!(format!(
        "https://github.com/{repo}/{}/{}#issuecomment-{}",
        if on_pr { "pull" } else { "issues" },
        c.number,
        c.id
    ));
    v["created_at"] = json!(c.created_at);
    v["updated_at"] = json!(c.updated_at);
    v
}

/// `GET /repos/{owner}/{repo}/issues/comments`: every issue's comments,
/// `since=` by update time, paged, with an ETag.
async fn gh_repo_comments(
    State(r): State<Remote>,
    Path((owner, repo)): Path<(String, String)>,
    Query(raw): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "poll_comments",
            &method,
            &format!("/repos/{owner}/{repo}/issues/comments"),
            &headers,
            b"",
            false,
        )?;
        check_repo(&r, &owner, &repo)?;
        let since = raw.get("since").map(|s| parse_time(s));
        let per_page = raw
            .get("per_page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page = raw
            .get("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let mut list: Vec<Comment> = r
            .lock()
            .comments
            .iter()
            .filter(|c| since.is_none_or(|t| parse_time(&c.updated_at) >= t))
            .cloned()
            .collect();
        list.sort_by_key(|c| (c.updated_at.clone(), c.id));
        let more = list.len() > page * per_page;
        let body = Value::Array(
            list.iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|c| gh_comment_json(&r, c))
                .collect(),
        );
        let text = body.to_string();
        record(
            &r,
            "get",
            "/repos/{owner}/{repo}/issues/comments",
            200,
            &body,
        );
        Ok(with_paging(
            axum::Json(body).into_response(),
            &format!("{}/repos/{owner}/{repo}/issues/comments", r.base),
            &raw,
            page,
            more,
            &text,
            &headers,
        ))
    };
    go().unwrap_or_else(|e| e)
}

async fn gh_update_comment(
    State(r): State<Remote>,
    Path((owner, repo, comment_id)): Path<(String, String, i64)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "update_comment",
        &method,
        &format!("/repos/{owner}/{repo}/issues/comments/{comment_id}"),
        &headers,
        &body,
        false,
    )
    .and_then(|g| check_repo(&r, &owner, &repo).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let Some(text) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["body"].as_str().map(str::to_owned))
    else {
        return github_error(422, "Validation Failed");
    };
    if r.lock().comment(comment_id).is_none() {
        return github_error(404, "Not Found");
    }
    r.lock().edit_comment(comment_id, &text);
    let c = r.lock().comment(comment_id);
    let v = c.map(|c| gh_comment_json(&r, &c)).unwrap_or(Value::Null);
    record(
        &r,
        "patch",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        200,
        &v,
    );
    finish(g, axum::Json(v).into_response()).await
}

async fn gh_repo(
    State(r): State<Remote>,
    Path((owner, repo)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "get_repo",
            &method,
            &format!("/repos/{owner}/{repo}"),
            &headers,
            b"",
            false,
        )?;
        check_repo(&r, &owner, &repo)?;
        let mut v = example("full-repository");
        v["full_name"] = json!(format!("{owner}/{repo}"));
        v["name"] = json!(repo);
        v["has_issues"] = json!(true);
        // Required by the schema, missing from GitHub's own example.
        v["has_discussions"] = json!(false);
        // What GitHub reports for a token that may write to the repository.
        v["permissions"] =
            json!({"admin": false, "maintain": false, "push": true, "triage": true, "pull": true});
        record(&r, "get", "/repos/{owner}/{repo}", 200, &v);
        Ok(axum::Json(v).into_response())
    };
    go().unwrap_or_else(|e| e)
}

#[derive(serde::Deserialize, Default)]
pub struct ListParams {
    state: Option<String>,
    sort: Option<String>,
    direction: Option<String>,
    since: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
    // GitLab
    order_by: Option<String>,
    updated_after: Option<String>,
}

fn parse_time(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// Filters, sorts and pages issues; returns the page and whether more follow.
fn select(r: &Remote, p: &ListParams, gitlab: bool) -> (Vec<Issue>, bool, usize) {
    let s = r.lock();
    let include_closed = if gitlab {
        p.state.as_deref() != Some("opened")
    } else {
        matches!(p.state.as_deref(), Some("all") | Some("closed"))
    };
    let since = p
        .since
        .as_deref()
        .or(p.updated_after.as_deref())
        .map(parse_time);
    let mut list: Vec<Issue> = s
        .issues
        .values()
        .filter(|i| !i.deleted && (include_closed || !i.closed))
        .filter(|i| !gitlab || !i.is_pull_request)
        .filter(|i| since.is_none_or(|t| parse_time(&i.updated_at) >= t))
        .cloned()
        .collect();
    let by_created =
        p.sort.as_deref() == Some("created") || p.order_by.as_deref() == Some("created_at");
    list.sort_by_key(|i| {
        if by_created {
            (i.created_at.clone(), i.number)
        } else {
            (i.updated_at.clone(), i.number)
        }
    });
    if p.direction.as_deref() == Some("desc") {
        list.reverse();
    }
    let per_page = p.per_page.unwrap_or(30).clamp(1, 100);
    let page = p.page.unwrap_or(1).max(1);
    let more = list.len() > page * per_page;
    let items = list
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    (items, more, page)
}

fn with_paging(
    mut response: Response,
    base_path: &str,
    query: &HashMap<String, String>,
    page: usize,
    more: bool,
    body: &str,
    headers: &HeaderMap,
) -> Response {
    let etag = format!("\"{:x}\"", md5ish(body));
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    if more {
        let mut q: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.sort();
        q.push(("page".into(), (page + 1).to_string()));
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        let link = format!("<{base_path}?{qs}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().insert("link", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert("etag", v);
    }
    response
}

/// A cheap content hash for ETags.
fn md5ish(body: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

async fn gh_list(
    State(r): State<Remote>,
    Path((owner, repo)): Path<(String, String)>,
    Query(raw): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "list_issues",
            &method,
            &format!("/repos/{owner}/{repo}/issues"),
            &headers,
            b"",
            false,
        )?;
        check_repo(&r, &owner, &repo)?;
        let params: ListParams =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(&raw).unwrap_or_default())
                .unwrap_or_default();
        let (items, more, page) = select(&r, &params, false);
        let body = Value::Array(items.iter().map(|i| gh_issue_json(&r, i)).collect());
        let text = body.to_string();
        record(&r, "get", "/repos/{owner}/{repo}/issues", 200, &body);
        let response = axum::Json(body).into_response();
        Ok(with_paging(
            response,
            &format!("{}/repos/{owner}/{repo}/issues", r.base),
            &raw,
            page,
            more,
            &text,
            &headers,
        ))
    };
    go().unwrap_or_else(|e| e)
}

#[derive(serde::Deserialize)]
struct GhWrite {
    title: Option<String>,
    body: Option<String>,
    labels: Option<Vec<String>>,
    state: Option<String>,
}

async fn gh_create(
    State(r): State<Remote>,
    Path((owner, repo)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "create_issue",
        &method,
        &format!("/repos/{owner}/{repo}/issues"),
        &headers,
        &body,
        false,
    )
    .and_then(|g| check_repo(&r, &owner, &repo).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let Ok(w) = serde_json::from_slice::<GhWrite>(&body) else {
        return github_error(400, "Problems parsing JSON");
    };
    let number = {
        let mut s = r.lock();
        let labels: Vec<&str> = w.labels.iter().flatten().map(String::as_str).collect();
        s.add_issue(
            w.title.as_deref().unwrap_or(""),
            w.body.as_deref().unwrap_or(""),
            &labels,
            "taskharbor-bot",
            false,
        )
    };
    let issue = r.lock().issues.get(&number).cloned();
    let v = issue.map(|i| gh_issue_json(&r, &i)).unwrap_or(Value::Null);
    record(&r, "post", "/repos/{owner}/{repo}/issues", 201, &v);
    finish(g, (StatusCode::CREATED, axum::Json(v)).into_response()).await
}

async fn gh_get(
    State(r): State<Remote>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "get_issue",
            &method,
            &format!("/repos/{owner}/{repo}/issues/{number}"),
            &headers,
            b"",
            false,
        )?;
        check_repo(&r, &owner, &repo)?;
        let issue = r.lock().issues.get(&number).cloned();
        match issue {
            Some(i) if i.deleted => Err(github_error(410, "This issue was deleted")),
            Some(i) => {
                let v = gh_issue_json(&r, &i);
                record(
                    &r,
                    "get",
                    "/repos/{owner}/{repo}/issues/{issue_number}",
                    200,
                    &v,
                );
                Ok(axum::Json(v).into_response())
            }
            None => Err(github_error(404, "Not Found")),
        }
    };
    go().unwrap_or_else(|e| e)
}

async fn gh_update(
    State(r): State<Remote>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "update_issue",
        &method,
        &format!("/repos/{owner}/{repo}/issues/{number}"),
        &headers,
        &body,
        false,
    )
    .and_then(|g| check_repo(&r, &owner, &repo).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let Ok(w) = serde_json::from_slice::<GhWrite>(&body) else {
        return github_error(400, "Problems parsing JSON");
    };
    let exists = r.lock().issues.get(&number).is_some_and(|i| !i.deleted);
    if !exists {
        return github_error(404, "Not Found");
    }
    r.lock().edit(number, |i| {
        if let Some(t) = w.title {
            i.title = t;
        }
        if let Some(b) = w.body {
            i.body = b;
        }
        if let Some(l) = w.labels {
            i.labels = l;
        }
        if let Some(s) = w.state {
            i.closed = s == "closed";
        }
    });
    let issue = r.lock().issues.get(&number).cloned();
    let v = issue.map(|i| gh_issue_json(&r, &i)).unwrap_or(Value::Null);
    record(
        &r,
        "patch",
        "/repos/{owner}/{repo}/issues/{issue_number}",
        200,
        &v,
    );
    finish(g, axum::Json(v).into_response()).await
}

async fn gh_comments(
    State(r): State<Remote>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "list_comments",
            &method,
            &format!("/repos/{owner}/{repo}/issues/{number}/comments"),
            &headers,
            b"",
            false,
        )?;
        check_repo(&r, &owner, &repo)?;
        let list: Vec<Comment> = r
            .lock()
            .comments
            .iter()
            .filter(|c| c.number == number)
            .cloned()
            .collect();
        let v = Value::Array(list.iter().map(|c| gh_comment_json(&r, c)).collect());
        record(
            &r,
            "get",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            200,
            &v,
        );
        Ok(axum::Json(v).into_response())
    };
    go().unwrap_or_else(|e| e)
}

async fn gh_comment(
    State(r): State<Remote>,
    Path((owner, repo, number)): Path<(String, String, i64)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "create_comment",
        &method,
        &format!("/repos/{owner}/{repo}/issues/{number}/comments"),
        &headers,
        &body,
        false,
    )
    .and_then(|g| check_repo(&r, &owner, &repo).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["body"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let id = r.lock().add_comment(number, &text, "taskharbor-bot");
    let c = r.lock().comments.iter().find(|c| c.id == id).cloned();
    let v = c.map(|c| gh_comment_json(&r, &c)).unwrap_or(Value::Null);
    record(
        &r,
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        201,
        &v,
    );
    finish(g, (StatusCode::CREATED, axum::Json(v)).into_response()).await
}

// ---------- GitLab (REST v4, documented shapes) ----------

fn gl_issue_json(r: &Remote, i: &Issue) -> Value {
    let repo = r.lock().repo.clone();
    json!({
        "id": 5000 + i.number, "iid": i.number, "project_id": 42, "title": i.title, "description": i.body,
        "state": if i.closed { "closed" } else { "opened" }, "created_at": i.created_at, "updated_at": i.updated_at,
        "closed_at": if i.closed { json!(i.updated_at) } else { Value::Null }, "labels": i.labels,
        "author": {"id": 1, "username": i.author, "name": i.author, "state": "active"},
        "assignees": [], "type": "ISSUE", "issue_type": "issue", "moved_to_id": null, "confidential": false,
        "web_url": format!("https://gitlab.example.com/{repo}/-/issues/{}", i.number),
        "references": {"short": format!("#{}", i.number)}
    })
}

fn gl_repo_ok(r: &Remote, project: &str) -> Result<(), Response> {
    if project == r.lock().repo {
        Ok(())
    } else {
        Err((
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Project Not Found"})),
        )
            .into_response())
    }
}

async fn gl_project(
    State(r): State<Remote>,
    Path(project): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "get_repo",
            &method,
            &format!("/projects/{project}"),
            &headers,
            b"",
            true,
        )?;
        gl_repo_ok(&r, &project)?;
        Ok(
            axum::Json(json!({"id": 42, "path_with_namespace": project, "issues_enabled": true}))
                .into_response(),
        )
    };
    go().unwrap_or_else(|e| e)
}

async fn gl_list(
    State(r): State<Remote>,
    Path(project): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "list_issues",
            &method,
            &format!("/projects/{project}/issues"),
            &headers,
            b"",
            true,
        )?;
        gl_repo_ok(&r, &project)?;
        let params: ListParams =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(&raw).unwrap_or_default())
                .unwrap_or_default();
        let (items, more, page) = select(&r, &params, true);
        let body = Value::Array(items.iter().map(|i| gl_issue_json(&r, i)).collect());
        let text = body.to_string();
        let encoded: String = url::form_urlencoded::byte_serialize(project.as_bytes()).collect();
        Ok(with_paging(
            axum::Json(body).into_response(),
            &format!("{}/api/v4/projects/{encoded}/issues", r.base),
            &raw,
            page,
            more,
            &text,
            &headers,
        ))
    };
    go().unwrap_or_else(|e| e)
}

#[derive(serde::Deserialize)]
struct GlWrite {
    title: Option<String>,
    description: Option<String>,
    labels: Option<String>,
    state_event: Option<String>,
}

fn split_labels(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn gl_create(
    State(r): State<Remote>,
    Path(project): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "create_issue",
        &method,
        &format!("/projects/{project}/issues"),
        &headers,
        &body,
        true,
    )
    .and_then(|g| gl_repo_ok(&r, &project).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let Ok(w) = serde_json::from_slice::<GlWrite>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "bad json"})),
        )
            .into_response();
    };
    let labels = split_labels(w.labels.as_deref().unwrap_or(""));
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let number = r.lock().add_issue(
        w.title.as_deref().unwrap_or(""),
        w.description.as_deref().unwrap_or(""),
        &labels,
        "taskharbor-bot",
        false,
    );
    let issue = r.lock().issues.get(&number).cloned();
    let v = issue.map(|i| gl_issue_json(&r, &i)).unwrap_or(Value::Null);
    finish(g, (StatusCode::CREATED, axum::Json(v)).into_response()).await
}

async fn gl_get(
    State(r): State<Remote>,
    Path((project, number)): Path<(String, i64)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "get_issue",
            &method,
            &format!("/projects/{project}/issues/{number}"),
            &headers,
            b"",
            true,
        )?;
        gl_repo_ok(&r, &project)?;
        let issue = r.lock().issues.get(&number).cloned().filter(|i| !i.deleted);
        match issue {
            Some(i) => Ok(axum::Json(gl_issue_json(&r, &i)).into_response()),
            None => Err((
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "404 Not found"})),
            )
                .into_response()),
        }
    };
    go().unwrap_or_else(|e| e)
}

async fn gl_update(
    State(r): State<Remote>,
    Path((project, number)): Path<(String, i64)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "update_issue",
        &method,
        &format!("/projects/{project}/issues/{number}"),
        &headers,
        &body,
        true,
    )
    .and_then(|g| gl_repo_ok(&r, &project).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let Ok(w) = serde_json::from_slice::<GlWrite>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "bad json"})),
        )
            .into_response();
    };
    r.lock().edit(number, |i| {
        if let Some(t) = w.title {
            i.title = t;
        }
        if let Some(d) = w.description {
            i.body = d;
        }
        if let Some(l) = w.labels {
            i.labels = split_labels(&l);
        }
        match w.state_event.as_deref() {
            Some("close") => i.closed = true,
            Some("reopen") => i.closed = false,
            _ => {}
        }
    });
    let issue = r.lock().issues.get(&number).cloned();
    let v = issue.map(|i| gl_issue_json(&r, &i)).unwrap_or(Value::Null);
    finish(g, axum::Json(v).into_response()).await
}

async fn gl_notes(
    State(r): State<Remote>,
    Path((project, number)): Path<(String, i64)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let go = || -> Answer {
        gate(
            &r,
            "list_comments",
            &method,
            &format!("/projects/{project}/issues/{number}/notes"),
            &headers,
            b"",
            true,
        )?;
        gl_repo_ok(&r, &project)?;
        let list: Vec<Value> = r
            .lock()
            .comments
            .iter()
            .filter(|c| c.number == number)
            .map(gl_note_json)
            .collect();
        Ok(axum::Json(Value::Array(list)).into_response())
    };
    go().unwrap_or_else(|e| e)
}

async fn gl_note(
    State(r): State<Remote>,
    Path((project, number)): Path<(String, i64)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "create_comment",
        &method,
        &format!("/projects/{project}/issues/{number}/notes"),
        &headers,
        &body,
        true,
    )
    .and_then(|g| gl_repo_ok(&r, &project).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["body"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let id = r.lock().add_comment(number, &text, "taskharbor-bot");
    let v = r
        .lock()
        .comment(id)
        .map(|c| gl_note_json(&c))
        .unwrap_or(Value::Null);
    finish(g, (StatusCode::CREATED, axum::Json(v)).into_response()).await
}

/// A note as GitLab's REST v4 documents it (the fields around ours).
fn gl_note_json(c: &Comment) -> Value {
    json!({"id": c.id, "type": null, "body": c.body, "attachment": null,
        "author": {"id": 1, "username": c.author, "name": c.author, "state": "active"},
        "created_at": c.created_at, "updated_at": c.updated_at, "system": false,
        "noteable_id": 5000 + c.number, "noteable_type": "Issue", "noteable_iid": c.number,
        "resolvable": false, "confidential": false, "internal": false})
}

/// `PUT /projects/:id/issues/:issue_iid/notes/:note_id` `{"body"}`.
async fn gl_update_note(
    State(r): State<Remote>,
    Path((project, number, note_id)): Path<(String, i64, i64)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let g = match gate(
        &r,
        "update_comment",
        &method,
        &format!("/projects/{project}/issues/{number}/notes/{note_id}"),
        &headers,
        &body,
        true,
    )
    .and_then(|g| gl_repo_ok(&r, &project).map(|()| g))
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["body"].as_str().map(str::to_owned));
    let exists = r
        .lock()
        .comment(note_id)
        .is_some_and(|c| c.number == number);
    let (Some(text), true) = (text, exists) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Not found"})),
        )
            .into_response();
    };
    r.lock().edit_comment(note_id, &text);
    let v = r
        .lock()
        .comment(note_id)
        .map(|c| gl_note_json(&c))
        .unwrap_or(Value::Null);
    finish(g, axum::Json(v).into_response()).await
}
