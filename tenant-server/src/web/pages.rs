//! The dashboard's page handlers: each loads what it shows through the
//! store's visibility-checked reads (as the signed-in user's principal)
//! and renders one template. Changes go through `/api` from the browser;
//! the only form posts handled here are setup, sign-in, sign-out and
//! user creation, each checked against a CSRF token.

use super::session::{self, FORM_COOKIE, SESSION_COOKIE, Session};
use super::{WebError, health, page, parse_form, with_page_headers};
use crate::AppState;
use crate::commands::{self, sessions};
use crate::domain::{DomainError, Scope};
use crate::edge::error::ApiError;
use crate::store::items::ItemFilter;
use crate::store::model::{Board, Item, Lane};
use crate::store::{self, boards, comments, events, items, tokens};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most cards a board page renders (the API pages through the rest).
pub const BOARD_PAGE_LIMIT: i64 = 5_000;

/// The signed-in user; anyone else is sent to the sign-in page.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match session::from_headers(state, &parts.headers).await? {
            Some(s) => Ok(SignedIn(s)),
            None => Err(WebError::SignIn {
                next: parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned(),
            }),
        }
    }
}

/// URLs of the embedded CSS and JS, with their content hashes.
#[derive(Debug, Clone, Serialize)]
pub struct AssetUrls {
    pub css: String,
    pub js: String,
    pub favicon: String,
}

impl AssetUrls {
    pub fn get() -> Self {
        Self {
            css: format!("/static/app.css?v={}", super::CSS.hash),
            js: format!("/static/app.js?v={}", super::JS.hash),
            favicon: format!("/static/favicon.svg?v={}", super::FAVICON.hash),
        }
    }
}

/// Who is signed in, as every page's header shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MeView {
    pub username: String,
    pub worker_id: i64,
    pub is_admin: bool,
    pub board_admin: bool,
    pub can_write: bool,
    pub csrf: String,
}

impl MeView {
    pub fn of(session: &Session) -> Self {
        let p = session.user.principal();
        Self {
            username: session.user.username.clone(),
            worker_id: p.worker_id,
            is_admin: p.is_admin(),
            board_admin: p.has(Scope::BoardAdmin),
            can_write: p.has(Scope::QueueWrite),
            csrf: session.csrf.clone(),
        }
    }
}

fn base(session: &Session, title: &str) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert("me", &MeView::of(session));
    context.insert("assets", &AssetUrls::get());
    context.insert("title", title);
    context
}

pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `2026-11-21 22:41 UTC`.
pub fn format_ms(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A local path to return to after signing in (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/boards".to_owned(),
    }
}

pub(super) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn redirect_with_cookies(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = Redirect::to(to).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    if session::count_users(&state.store.reader).await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(match session::from_headers(&state, &headers).await? {
        Some(_) => Redirect::to("/boards").into_response(),
        None => Redirect::to("/login").into_response(),
    })
}

/// A pre-session form: a fresh double-submit token in a cookie and field.
fn form_page(
    state: &AppState,
    name: &str,
    status: StatusCode,
    error: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<Response, WebError> {
    let token = session::random_secret();
    let mut context = tera::Context::new();
    context.insert("assets", &AssetUrls::get());
    context.insert("form_token", &token);
    context.insert("error", &error);
    for (k, v) in extra {
        context.insert(*k, v);
    }
    let mut response = page(name, &context)?;
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(state, FORM_COOKIE, &token, 3600),
    );
    Ok(response)
}

fn form_token_ok(headers: &HeaderMap, form: &[(String, String)]) -> bool {
    session::cookie(headers, FORM_COOKIE)
        .is_some_and(|c| session::secrets_match(c, field(form, "form_token")))
}

pub async fn setup_form(State(state): State<AppState>) -> Result<Response, WebError> {
    if session::count_users(&state.store.reader).await? > 0 {
        return Ok(Redirect::to("/login").into_response());
    }
    form_page(&state, "setup.html", StatusCode::OK, None, &[])
}

/// First sign-in: whoever holds an admin API token creates the first
/// human admin. Closed for good once any user exists.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    if session::count_users(&state.store.reader).await? > 0 {
        return Err(ApiError::Forbidden("setup is done; sign in instead".into()).into());
    }
    let form = parse_form(&body);
    let retry = |status, message: &str| {
        form_page(
            &state,
            "setup.html",
            status,
            Some(message),
            &[("username", field(&form, "username"))],
        )
    };
    if !form_token_ok(&headers, &form) {
        return retry(StatusCode::FORBIDDEN, "The form expired; please try again.");
    }
    let now = store::now_ms();
    let admin = tokens::authenticate(&state.store.reader, field(&form, "admin_token").trim(), now)
        .await?
        .map(|(p, _)| p);
    if !admin.is_some_and(|p| p.is_admin()) {
        return retry(
            StatusCode::UNAUTHORIZED,
            "That is not a working admin token (unconfined, admin scope).",
        );
    }
    if field(&form, "password") != field(&form, "password_again") {
        return retry(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ.",
        );
    }
    let new = match session::NewUser::parse(
        field(&form, "username"),
        field(&form, "password"),
        "admin",
        None,
    ) {
        Ok(new) => new,
        Err(errors) => {
            let message: Vec<String> = errors.iter().map(|(f, m)| format!("{f} {m}")).collect();
            return retry(StatusCode::UNPROCESSABLE_ENTITY, &message.join("; "));
        }
    };
    let hash = session::hash_password_blocking(new.password.clone()).await?;
    let started = match sessions::set_up_first_user(&state.store, &new, hash, now).await {
        Ok(started) => started,
        Err(store::CommandError::Rule(rule @ DomainError::Forbidden(_))) => {
            return Err(ApiError::from(rule).into());
        }
        Err(store::CommandError::Rule(rule)) => {
            return retry(StatusCode::UNPROCESSABLE_ENTITY, &rule.to_string());
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %new.username, "first admin user set up");
    Ok(signed_in(&state, &started.id, "/boards"))
}

fn signed_in(state: &AppState, id: &str, to: &str) -> Response {
    redirect_with_cookies(
        to,
        vec![
            session::set_cookie(state, SESSION_COOKIE, id, session::ABSOLUTE_MS / 1000),
            session::set_cookie(state, FORM_COOKIE, "", 0),
        ],
    )
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
) -> Result<Response, WebError> {
    if session::count_users(&state.store.reader).await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    let next = safe_next(query.next.as_deref());
    form_page(
        &state,
        "login.html",
        StatusCode::OK,
        None,
        &[("next", &next)],
    )
}

pub async fn login(
    State(state): State<AppState>,
    session::PeerIp(source): session::PeerIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let scope = state.store.path().display().to_string();
    let form = parse_form(&body);
    let next = safe_next(Some(field(&form, "next")));
    let username = field(&form, "username").to_owned();
    let retry = |status, message: &str| {
        form_page(
            &state,
            "login.html",
            status,
            Some(message),
            &[("next", &next), ("username", &username)],
        )
    };
    if !form_token_ok(&headers, &form) {
        return retry(StatusCode::FORBIDDEN, "The form expired; please try again.");
    }
    let throttle = session::LoginThrottle::global();
    let now = store::now_ms();
    if let Err(wait) = throttle.check(&scope, &username, source, now) {
        let mut response = retry(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-ins; try again in {wait} s."),
        )?;
        if let Ok(value) = axum::http::HeaderValue::from_str(&wait.to_string()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    match sessions::login(&state.store, &username, field(&form, "password"), now).await? {
        Some(started) => {
            throttle.succeeded(&scope, &username, source);
            Ok(signed_in(&state, &started.id, &next))
        }
        None => {
            throttle.failed(&scope, &username, source, store::now_ms());
            retry(StatusCode::UNAUTHORIZED, "Wrong username or password.")
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    if let Some(id) = session::cookie(&headers, SESSION_COOKIE) {
        if let Some(current) = sessions::authenticate(&state.store, id, store::now_ms()).await?
            && !session::secrets_match(&current.csrf, field(&form, "csrf"))
        {
            return Err(ApiError::Forbidden("missing or wrong CSRF token".into()).into());
        }
        sessions::end(&state.store, id).await?;
    }
    Ok(redirect_with_cookies(
        "/login",
        vec![session::set_cookie(&state, SESSION_COOKIE, "", 0)],
    ))
}

pub async fn boards(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let list = boards::list(&state.store.reader, &principal).await?;
    let mut context = base(&session, "Boards");
    context.insert("boards", &list);
    page("boards.html", &context)
}

/// One card as the board shows it (`web::card`).
#[derive(Debug, Clone, Serialize)]
pub struct CardView {
    pub id: i64,
    pub key: String,
    pub lane_id: i64,
    pub title: String,
    pub kind: String,
    pub priority: i64,
    pub labels: Vec<String>,
    pub labels_attr: String,
    pub agent_ready: bool,
    pub open_blockers: i64,
    pub holder: Option<String>,
    pub holder_kind: Option<String>,
    pub holder_id: Option<i64>,
    pub lease_ms: Option<i64>,
    pub version: i64,
    /// Sync badge: state, and the issue link when it is a web URL.
    pub sync_state: Option<String>,
    pub sync_number: Option<i64>,
    pub sync_url: Option<String>,
    pub sync_error: Option<String>,
    /// In a backlog or ready lane, where claims are taken.
    pub claimable_lane: bool,
}

impl CardView {
    pub fn of(item: &Item) -> Self {
        Self {
            id: item.id,
            key: item.key.clone(),
            lane_id: item.lane_id,
            title: item.title.clone(),
            kind: item.kind.as_str().to_owned(),
            priority: item.priority,
            labels_attr: item.labels.join(","),
            labels: item.labels.clone(),
            agent_ready: item.agent_ready,
            open_blockers: item.open_blockers,
            holder: item.claim.as_ref().map(|c| c.worker.name.clone()),
            holder_kind: item
                .claim
                .as_ref()
                .map(|c| c.worker.kind.as_str().to_owned()),
            holder_id: item.claim.as_ref().map(|c| c.worker.id),
            lease_ms: item.claim.as_ref().map(|c| c.lease_expires_at.0),
            version: item.version,
            sync_state: item.sync.as_ref().map(|s| s.state.clone()),
            sync_number: item.sync.as_ref().and_then(|s| s.number),
            // Only web links: a provider's answer must not become a script URL.
            sync_url: item
                .sync
                .as_ref()
                .and_then(|s| s.url.clone())
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            sync_error: item.sync.as_ref().and_then(|s| s.error.clone()),
            claimable_lane: item.status.is_open(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneView {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub who: String,
    pub wip_limit: Option<i64>,
    pub count: usize,
    pub full: bool,
    pub over: bool,
    /// Not sent to the template: `cards_html` carries them rendered.
    #[serde(skip)]
    pub items: Vec<CardView>,
    /// The lane's cards (`web::card`), filled by `board_context`.
    pub cards_html: String,
}

/// Groups a board's items into its lanes, in lane order.
pub fn lane_views(lanes: &[Lane], items: &[Item]) -> Vec<LaneView> {
    let mut by_lane: HashMap<i64, Vec<CardView>> = HashMap::new();
    for item in items {
        by_lane
            .entry(item.lane_id)
            .or_default()
            .push(CardView::of(item));
    }
    lanes
        .iter()
        .map(|lane| {
            let mut cards = by_lane.remove(&lane.id).unwrap_or_default();
            cards.sort_by_key(|c| (c.priority, c.id));
            let count = cards.len();
            LaneView {
                id: lane.id,
                name: lane.name.clone(),
                role: lane.role.as_str().to_owned(),
                who: lane.who.as_str().to_owned(),
                wip_limit: lane.wip_limit,
                count,
                full: lane.wip_limit.is_some_and(|l| count as i64 >= l),
                over: lane.wip_limit.is_some_and(|l| count as i64 > l),
                items: cards,
                cards_html: String::new(),
            }
        })
        .collect()
}

/// The board page's template context (also used by tests and the bench).
pub fn board_context(
    session: &Session,
    board: &Board,
    lanes: &[Lane],
    items: &[Item],
    truncated: bool,
    last_event: i64,
) -> tera::Context {
    let mut context = base(session, &board.name);
    context.insert("board", board);
    let me = MeView::of(session);
    let mut lanes = lane_views(lanes, items);
    for lane in &mut lanes {
        let mut html = String::with_capacity(lane.items.len() * 900);
        for card in &lane.items {
            super::card::render(&mut html, card, &me);
        }
        lane.cards_html = html;
    }
    context.insert("lanes", &lanes);
    context.insert("truncated", &truncated);
    context.insert("limit", &BOARD_PAGE_LIMIT);
    context.insert("last_event", &last_event);
    context.insert(
        "is_board_admin",
        &session.user.principal().is_board_admin(board.id),
    );
    let mut labels: Vec<&String> = items.iter().flat_map(|i| i.labels.iter()).collect();
    labels.sort_unstable();
    labels.dedup();
    context.insert("all_labels", &labels);
    context
}

async fn last_event_id(state: &AppState, board_id: i64) -> Result<i64, sqlx::Error> {
    events::last_id(&state.store.reader, Some(board_id)).await
}

pub async fn board(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let board = boards::get(&state.store.reader, &principal, id).await?;
    let lanes = boards::list_lanes(&state.store.reader, &principal, id).await?;
    let last_event = last_event_id(&state, id).await?;
    let filter = ItemFilter {
        limit: BOARD_PAGE_LIMIT + 1,
        ..ItemFilter::default()
    };
    let mut list = items::list(
        &state.store.reader,
        &principal,
        id,
        &filter,
        store::now_ms(),
    )
    .await?;
    let truncated = list.len() as i64 > BOARD_PAGE_LIMIT;
    list.truncate(BOARD_PAGE_LIMIT as usize);
    page(
        "board.html",
        &board_context(&session, &board, &lanes, &list, truncated, last_event),
    )
}

/// One card's HTML, for live updates (the same `web::card` the page uses).
pub async fn card(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((board_id, item_id)): Path<(i64, i64)>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let item = items::get(&state.store.reader, &principal, item_id, store::now_ms()).await?;
    if item.board_id != board_id {
        return Err(ApiError::NotFound("item".into()).into());
    }
    let mut html = String::new();
    super::card::render(&mut html, &CardView::of(&item), &MeView::of(&session));
    Ok(with_page_headers(Html(html).into_response()))
}

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    pub after: Option<i64>,
}

/// The board's events after `after` (a polling fallback for the SSE stream).
pub async fn changes(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
    Query(query): Query<ChangesQuery>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    boards::get(&state.store.reader, &principal, id).await?;
    let list = events::feed(&state.store.reader, Some(id), query.after.unwrap_or(0), 500).await?;
    let last = list.last().map_or(query.after.unwrap_or(0), |e| e.id);
    let mut response = Json(serde_json::json!({"events": list, "last": last})).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn require_board_admin(session: &Session, board_id: i64) -> Result<(), WebError> {
    if session.user.principal().is_board_admin(board_id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("this page is for board admins".into()).into())
    }
}

/// A length of time as a settings field shows it: a number and a unit
/// (seconds per unit: 60, 3600 or 86400), the largest unit that fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationField {
    pub value: String,
    pub unit: i64,
}

impl DurationField {
    pub fn of(seconds: i64) -> Self {
        let unit = [86_400, 3_600, 60]
            .into_iter()
            .find(|u| seconds >= *u && seconds % u == 0)
            .unwrap_or(60);
        let value = if seconds % unit == 0 {
            (seconds / unit).to_string()
        } else {
            // Not a whole number of minutes: keep it exact.
            let text = format!("{:.4}", seconds as f64 / unit as f64);
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        };
        Self { value, unit }
    }
}

/// The lease settings as the settings form shows them.
pub fn lease_fields(board: &Board) -> serde_json::Value {
    let field = |name: &str, label: &str, help: &str, seconds: i64| {
        let d = DurationField::of(seconds);
        serde_json::json!({"name": name, "label": label, "help": help, "value": d.value, "unit": d.unit})
    };
    serde_json::json!([
        field(
            "agent_lease_seconds",
            "Agent lease",
            "how long an agent's claim lasts without a heartbeat",
            board.agent_lease_seconds
        ),
        field(
            "human_lease_seconds",
            "Human lease",
            "how long a person's claim lasts without activity",
            board.human_lease_seconds
        ),
    ])
}

pub async fn settings(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let board = boards::get(&state.store.reader, &principal, id).await?;
    require_board_admin(&session, id)?;
    let lanes = boards::list_lanes(&state.store.reader, &principal, id).await?;
    let mut context = base(&session, &format!("{} settings", board.name));
    context.insert("board", &board);
    context.insert("lease_fields", &lease_fields(&board));
    context.insert("lanes", &lanes);
    let sync = crate::sync::status::link_view(&state, id)
        .await
        .ok()
        .flatten();
    context.insert("sync", &sync);
    context.insert(
        "roles",
        &crate::domain::board::LaneRole::ALL.map(|r| r.as_str()),
    );
    page("settings.html", &context)
}

pub async fn webhooks(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let board = boards::get(&state.store.reader, &principal, id).await?;
    require_board_admin(&session, id)?;
    let mut context = base(&session, &format!("{} webhooks", board.name));
    context.insert("board", &board);
    // Endpoint health by webhook id, read by app.js into the list.
    let health = store::webhook_health::for_board(&state.store.reader, id).await?;
    context.insert(
        "health_json",
        &serde_json::to_string(&health).unwrap_or_else(|_| "{}".into()),
    );
    context.insert(
        "event_types",
        &crate::domain::event::EventType::ALL.map(|t| t.as_str()),
    );
    page("webhooks.html", &context)
}

pub async fn health(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let board = boards::get(&state.store.reader, &principal, id).await?;
    let report = health::board_health(
        &state.store.reader,
        id,
        board.claim_limit,
        board.agents_need_ready,
        store::now_ms(),
    )
    .await?;
    let mut context = base(&session, &format!("{} health", board.name));
    context.insert("board", &board);
    context.insert("health", &report);
    page("health.html", &context)
}

/// One history entry as the timeline shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub kind: String,
    pub who: String,
    pub who_kind: String,
    pub at: String,
    pub at_iso: String,
    pub summary: String,
}

fn lane_name(lanes: &HashMap<i64, String>, id: &serde_json::Value) -> String {
    id.as_i64()
        .and_then(|id| lanes.get(&id).cloned())
        .unwrap_or_else(|| "?".into())
}

/// What an event did, in words.
pub fn summarize(event: &crate::store::model::Event, lanes: &HashMap<i64, String>) -> String {
    let d = &event.data;
    match event.kind.as_str() {
        "item.created" => format!("created it in {}", lane_name(lanes, &d["lane_id"])),
        "item.updated" => {
            let fields: Vec<String> = d["changes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| match (&v["before"], &v["after"]) {
                            (b, a) if !b.is_null() || !a.is_null() => format!("{k}: {b} → {a}"),
                            _ => k.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("changed {}", fields.join("; "))
        }
        "item.moved" => {
            let mut text = format!(
                "moved {} → {}",
                lane_name(lanes, &d["from_lane_id"]),
                lane_name(lanes, &d["to_lane_id"])
            );
            if let Some(note) = d["note"].as_str() {
                text.push_str(&format!(" ({note})"));
            }
            text
        }
        "item.claimed" => "claimed it".into(),
        "item.released" => match d["reason"].as_str() {
            Some(reason) => format!("released it ({reason})"),
            None if d["forced"].as_bool() == Some(true) => "force-released it".into(),
            None => "released it".into(),
        },
        "item.claim-expired" => format!(
            "lease of {} expired",
            d["holder"]["name"].as_str().unwrap_or("the holder")
        ),
        "item.agent-ready" => "made it claimable by agents".into(),
        "item.done" => "finished it".into(),
        "comment.created" => "commented".into(),
        other => other.to_owned(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommentView {
    pub author: String,
    pub author_kind: String,
    pub kind: String,
    pub body: String,
    /// `body` as sanitised HTML ([`super::markdown`]).
    pub body_html: String,
    pub at: String,
    pub at_iso: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemRef {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub status: String,
}

impl ItemRef {
    fn of(item: &Item) -> Self {
        Self {
            id: item.id,
            key: item.key.clone(),
            title: item.title.clone(),
            status: item.status.as_str().to_owned(),
        }
    }
}

pub async fn item(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let now = store::now_ms();
    let reader = &state.store.reader;
    let item = items::get(reader, &principal, id, now).await?;
    let board = boards::get(reader, &principal, item.board_id).await?;
    let lanes = boards::list_lanes(reader, &principal, item.board_id).await?;
    let lane_names: HashMap<i64, String> = lanes.iter().map(|l| (l.id, l.name.clone())).collect();
    let comment_list = comments::list(reader, &principal, id, 0, 500).await?;
    let history = events::for_item(reader, id, 0, 500).await?;
    let subtask_ids = items::subtask_ids(reader, id, 200).await?;
    let mut subtasks = Vec::new();
    for sub in subtask_ids {
        subtasks.push(ItemRef::of(
            &items::get(reader, &principal, sub, now).await?,
        ));
    }
    let mut blockers = Vec::new();
    for blocker in &item.blocked_by {
        blockers.push(ItemRef::of(
            &items::get(reader, &principal, *blocker, now).await?,
        ));
    }
    let parent = match item.parent_id {
        Some(parent) => Some(ItemRef::of(
            &items::get(reader, &principal, parent, now).await?,
        )),
        None => None,
    };
    let timeline: Vec<EventView> = history
        .iter()
        .rev()
        .map(|e| EventView {
            kind: e.kind.clone(),
            who: e
                .actor
                .as_ref()
                .map_or_else(|| "server".into(), |a| a.name.clone()),
            who_kind: e
                .actor
                .as_ref()
                .map_or_else(|| "system".into(), |a| a.kind.as_str().to_owned()),
            at: format_ms(e.at.0),
            at_iso: e.at.to_rfc3339(),
            summary: summarize(e, &lane_names),
        })
        .collect();
    let comment_views: Vec<CommentView> = comment_list
        .iter()
        .map(|c| CommentView {
            author: c.author.name.clone(),
            author_kind: c.author.kind.as_str().to_owned(),
            kind: c.kind.as_str().to_owned(),
            body: c.body.clone(),
            body_html: super::markdown::render(&c.body),
            at: format_ms(c.created_at.0),
            at_iso: c.created_at.to_rfc3339(),
        })
        .collect();
    let mut context = base(&session, &format!("{} {}", item.key, item.title));
    context.insert("card", &CardView::of(&item));
    context.insert("item", &item);
    context.insert("body_html", &super::markdown::render(&item.body));
    context.insert(
        "item_json",
        &serde_json::to_string(&item).unwrap_or_default(),
    );
    context.insert("board", &board);
    context.insert("lane", &lane_names.get(&item.lane_id));
    context.insert("lanes", &lanes);
    context.insert("comments", &comment_views);
    context.insert("timeline", &timeline);
    context.insert("subtasks", &subtasks);
    context.insert("blockers", &blockers);
    context.insert("parent", &parent);
    // Dependencies are shown and entered by key (PLAT-8), never by id.
    context.insert(
        "blocked_by_text",
        &blockers
            .iter()
            .map(|b| b.key.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    context.insert(
        "checkpoint",
        &comment_views.iter().rev().find(|c| c.kind == "checkpoint"),
    );
    context.insert("labels_text", &item.labels.join(", "));
    page("item.html", &context)
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub worker: String,
    pub worker_kind: String,
    pub scopes: String,
    pub board: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub revoked: bool,
}

pub async fn tokens(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    if !principal.has(Scope::BoardAdmin) {
        return Err(ApiError::Forbidden("tokens are managed by board admins".into()).into());
    }
    let board_list = boards::list(&state.store.reader, &principal).await?;
    let keys: HashMap<i64, String> = board_list.iter().map(|b| (b.id, b.key.clone())).collect();
    let list: Vec<TokenView> = tokens::list(&state.store.reader, &principal)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            worker: t.worker.name,
            worker_kind: t.worker.kind.as_str().to_owned(),
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            board: t.board_id.map_or_else(
                || "all".into(),
                |b| keys.get(&b).cloned().unwrap_or_default(),
            ),
            created: format_ms(t.created_at.0),
            last_used: t
                .last_used_at
                .map_or_else(|| "never".into(), |at| format_ms(at.0)),
            expires: t
                .expires_at
                .map_or_else(|| "never".into(), |at| format_ms(at.0)),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    let mut context = base(&session, "API tokens");
    context.insert("tokens", &list);
    context.insert("boards", &board_list);
    page("tokens.html", &context)
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub scopes: String,
    pub board: String,
    pub created: String,
    pub sessions: i64,
    pub claims: i64,
    pub disabled: bool,
    pub is_me: bool,
}

/// The users page; `notice` is a sentence saying what just happened.
pub(super) async fn users_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let board_list = boards::list(&state.store.reader, &principal).await?;
    let keys: HashMap<i64, String> = board_list.iter().map(|b| (b.id, b.key.clone())).collect();
    let me = principal.worker_id;
    let list: Vec<UserView> = store::users::list(&state.store.reader)
        .await?
        .into_iter()
        .map(|u| UserView {
            id: u.id,
            is_me: u.worker_id == me,
            disabled: u.disabled_at.is_some(),
            claims: u.claims,
            username: u.username,
            scopes: serde_json::from_str::<Vec<Scope>>(&u.scopes)
                .unwrap_or_default()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            board: u.board_id.map_or_else(
                || "all".into(),
                |b| keys.get(&b).cloned().unwrap_or_default(),
            ),
            created: format_ms(u.created_at),
            sessions: u.sessions,
        })
        .collect();
    let mut context = base(session, "Users");
    context.insert("users", &list);
    context.insert("boards", &board_list);
    context.insert("error", &error);
    context.insert("notice", &notice);
    let mut response = page("users.html", &context)?;
    *response.status_mut() = status;
    Ok(response)
}

pub(super) fn require_admin(session: &Session) -> Result<(), WebError> {
    if session.user.principal().is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins manage users".into()).into())
    }
}

pub async fn users(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, WebError> {
    require_admin(&session)?;
    users_page(&state, &session, StatusCode::OK, None, None).await
}

pub async fn create_user(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    if !session::secrets_match(&session.csrf, field(&form, "csrf")) {
        return Err(ApiError::Forbidden("missing or wrong CSRF token".into()).into());
    }
    require_admin(&session)?;
    let board_id = match field(&form, "board_id") {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return users_page(
                    &state,
                    &session,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("board_id must be a board"),
                    None,
                )
                .await;
            }
        },
    };
    let new = match session::NewUser::parse(
        field(&form, "username"),
        field(&form, "password"),
        field(&form, "scope"),
        board_id,
    ) {
        Ok(new) => new,
        Err(errors) => {
            let message: Vec<String> = errors.iter().map(|(f, m)| format!("{f} {m}")).collect();
            return users_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&message.join("; ")),
                None,
            )
            .await;
        }
    };
    let hash = session::hash_password_blocking(new.password.clone()).await?;
    let admin = session.user.principal();
    match commands::users::create(&state.store, &admin, &new, hash, store::now_ms()).await {
        Ok(_) => {
            users_page(
                &state,
                &session,
                StatusCode::CREATED,
                None,
                Some(&format!("User {} created.", new.username)),
            )
            .await
        }
        Err(store::CommandError::Rule(rule)) => {
            users_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&rule.to_string()),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
