//! HTML pages: the landing page with its waitlist form (works without
//! JavaScript, protected by a double-submit CSRF cookie), the one-time
//! reveal page, and the small admin page.

use axum::{
    Json,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::{
    AppState,
    api::{self, Rejected},
    domain::{self, COMPANY_MAX, EMAIL_MAX, NOTE_MAX},
    error::ApiError,
    store,
};

pub const CSRF_COOKIE: &str = "th_cp_csrf";

const PUBLIC_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const ADMIN_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn well_formed_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Double-submit check: the hidden field must equal the cookie the landing
/// page set (HttpOnly, SameSite=Strict, so another site can neither read it
/// nor make the browser send it).
pub fn csrf_ok(headers: &HeaderMap, field: Option<&str>) -> bool {
    match (cookie_value(headers, CSRF_COOKIE), field) {
        (Some(cookie), Some(field)) if well_formed_token(cookie) => {
            bool::from(cookie.as_bytes().ct_eq(field.as_bytes()))
        }
        _ => false,
    }
}

/// The CSRF token of this browser (reused from its cookie), and whether a
/// cookie has to be set.
fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie_value(headers, CSRF_COOKIE).filter(|t| well_formed_token(t)) {
        Some(t) => (t.to_owned(), false),
        None => (domain::random_token(), true),
    }
}

fn csrf_cookie(state: &AppState, token: &str) -> Option<HeaderValue> {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400{secure}"
    ))
    .ok()
}

fn render(state: &AppState, template: &str, context: &tera::Context) -> Result<String, ()> {
    state.templates.render(template, context).map_err(|e| {
        state.metrics.error("template");
        tracing::error!(template, error = ?e, "template failed");
    })
}

fn page(state: &AppState, status: StatusCode, template: &str, context: &tera::Context) -> Response {
    match render(state, template, context) {
        Ok(body) => {
            let mut response = (status, Html(body)).into_response();
            let headers = response.headers_mut();
            let csp = if template == "admin.html" {
                ADMIN_CSP
            } else {
                PUBLIC_CSP
            };
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            );
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            response
        }
        Err(()) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

fn form_context(token: &str) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert("csrf_token", token);
    context.insert("email_max", &EMAIL_MAX);
    context.insert("company_max", &COMPANY_MAX);
    context.insert("note_max", &NOTE_MAX);
    context
}

/// `GET /`: the landing page and waitlist form.
pub async fn landing(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, fresh) = csrf_token(&headers);
    let mut response = page(&state, StatusCode::OK, "index.html", &form_context(&token));
    if fresh && let Some(cookie) = csrf_cookie(&state, &token) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn thanks(state: &AppState) -> Response {
    let mut context = tera::Context::new();
    context.insert("message", api::ACCEPTED_MESSAGE);
    page(state, StatusCode::OK, "thanks.html", &context)
}

/// The form again, with the visitor's values, a message per field and a
/// fresh CSRF token when theirs was missing.
pub fn form_rejected(state: &AppState, headers: &HeaderMap, rejected: Rejected) -> Response {
    let Rejected { error, input } = rejected;
    api::log_if_server_error(&error);
    let (token, fresh) = csrf_token(headers);
    let mut context = form_context(&token);
    context.insert("email", &input.email.unwrap_or_default());
    context.insert("company", &input.company.unwrap_or_default());
    context.insert("note", &input.note.unwrap_or_default());
    let message = match &error {
        ApiError::Validation(fields) => {
            context.insert("errors", fields);
            "Please correct the highlighted fields.".to_owned()
        }
        ApiError::RateLimited { retry_after_secs } => format!(
            "Too many signups from your network. Please try again in {} minutes.",
            retry_after_secs.div_ceil(60)
        ),
        ApiError::Forbidden(_) => "Your form expired. Please submit it again.".to_owned(),
        ApiError::PayloadTooLarge => "That was too much text.".to_owned(),
        e if e.status().is_server_error() => {
            "Something went wrong on our side. Please try again later.".to_owned()
        }
        e => e.to_string(),
    };
    context.insert("message", &message);
    let mut response = page(state, error.status(), "index.html", &context);
    if fresh && let Some(cookie) = csrf_cookie(state, &token) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    if let ApiError::RateLimited { retry_after_secs } = error
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// `GET /admin`: a static page; it talks to `/api/admin/*` with the token
/// the admin types in (kept in `sessionStorage`, sent as a Bearer header, so
/// there is no ambient cookie authority to forge).
pub async fn admin_page(State(state): State<AppState>) -> Response {
    let mut context = tera::Context::new();
    context.insert("kube", &state.cluster.is_some());
    page(&state, StatusCode::OK, "admin.html", &context)
}

/// The reveal link's record, if it can still be spent.
async fn live_reveal(state: &AppState, token: &str) -> Result<store::RevealRow, ApiError> {
    let row = store::find_reveal(&state.pool, &domain::sha256_hex(token))
        .await?
        .ok_or_else(|| ApiError::NotFound("unknown reveal link".into()))?;
    if row.used_at.is_some() || row.revealed_at.is_some() {
        return Err(ApiError::Gone("this link was already used".into()));
    }
    if row.expires_at <= store::now_ms() {
        return Err(ApiError::Gone(
            "this link has expired; ask us for a new one".into(),
        ));
    }
    if row.state == "deleted" {
        return Err(ApiError::Gone("this instance was deleted".into()));
    }
    if row.ready_at.is_none() {
        return Err(ApiError::Conflict(
            "your instance is still being set up; this link stays valid, try again in a minute"
                .into(),
        ));
    }
    Ok(row)
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn reveal_message(state: &AppState, error: &ApiError) -> Response {
    let mut context = tera::Context::new();
    context.insert("stage", "message");
    context.insert("message", &error.to_string());
    page(state, error.status(), "reveal.html", &context)
}

/// `GET /reveal/{token}`: a confirmation page only. Spending the link takes
/// a POST, so link previews and scanners that follow URLs cannot burn it.
pub async fn reveal_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let response = match live_reveal(&state, &token).await {
        Ok(row) => {
            let mut context = tera::Context::new();
            context.insert("stage", "confirm");
            context.insert("tenant", &row.tenant);
            page(&state, StatusCode::OK, "reveal.html", &context)
        }
        Err(e) => {
            api::log_if_server_error(&e);
            reveal_message(&state, &e)
        }
    };
    no_store(response)
}

async fn spend(state: &AppState, token: &str) -> Result<(String, SecretString), ApiError> {
    let row = live_reveal(state, token).await?;
    let cluster = state
        .cluster
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no cluster connected".into()))?;
    let bootstrap = cluster
        .bootstrap_token(&row.tenant)
        .await
        .map_err(|e| match e {
            crate::fleet::ClusterError::Kube(e) => {
                state.metrics.error("kube");
                ApiError::Kube(e)
            }
            e => ApiError::Unavailable(e.to_string()),
        })?;
    let spent = store::consume_reveal(
        &state.pool,
        &domain::sha256_hex(token),
        &row.tenant,
        &domain::sha256_hex(bootstrap.expose_secret()),
    )
    .await?;
    if !spent {
        return Err(ApiError::Gone("this link was already used".into()));
    }
    state.metrics.reveals.inc();
    tracing::info!(tenant = %row.tenant, "bootstrap token revealed");
    Ok((row.tenant, bootstrap))
}

/// `POST /reveal/{token}`: shows the tenant's bootstrap admin token once.
/// JSON for `Accept: application/json`, HTML otherwise.
pub async fn reveal(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let json = api::accepts_json(request.headers());
    let response = match (spend(&state, &token).await, json) {
        (Ok((tenant, secret)), true) => Json(json!({
            "tenant": tenant,
            "token": secret.expose_secret(),
        }))
        .into_response(),
        (Ok((tenant, secret)), false) => {
            let mut context = tera::Context::new();
            context.insert("stage", "token");
            context.insert("tenant", &tenant);
            context.insert("token", secret.expose_secret());
            page(&state, StatusCode::OK, "reveal.html", &context)
        }
        (Err(e), true) => e.into_response(),
        (Err(e), false) => {
            api::log_if_server_error(&e);
            reveal_message(&state, &e)
        }
    };
    no_store(response)
}
