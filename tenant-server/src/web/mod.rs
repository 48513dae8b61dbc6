//! The dashboard (issue 5): server-rendered pages over the same API.
//!
//! Pages are tera templates (`templates/tenant/*.html`, autoescaped) and one
//! vanilla JS file and one CSS file, all embedded in the binary with
//! `include_str!` and served under `/static/` with a content hash in the
//! query string and a year-long cache. The browser changes things only
//! through the `/api` routes agents use, authenticated by the session
//! cookie (see [`session`]); the dashboard's own POSTs are sign-in, setup,
//! sign-out and user creation. `health` holds the read-only queue health
//! queries.

pub mod card;
pub mod charts;
pub mod flow;
pub mod health;
pub mod lookup;
pub mod markdown;
pub mod pages;
pub mod session;
pub mod users;

use crate::AppState;
use crate::edge::error::ApiError;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The dashboard routes, with their state applied.
pub fn routes(state: &AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/setup", get(pages::setup_form).post(pages::setup))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/boards", get(pages::boards))
        .route("/boards/{id}", get(pages::board))
        .route("/boards/{id}/cards/{item}", get(pages::card))
        .route("/boards/{id}/changes", get(pages::changes))
        .route("/boards/{id}/settings", get(pages::settings))
        .route("/boards/{id}/webhooks", get(pages::webhooks))
        .route("/boards/{id}/health", get(pages::health))
        .route("/boards/{id}/flow", get(flow::flow_page))
        .route("/boards/{id}/items/lookup", get(lookup::lookup))
        .route("/items/{id}", get(pages::item))
        .route("/tokens", get(pages::tokens))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{id}/{action}", post(users::user_action))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .route("/static/favicon.svg", get(favicon))
        .with_state(state.clone())
}

/// One embedded static file and its content hash.
pub struct Asset {
    pub body: &'static str,
    pub content_type: &'static str,
    pub hash: String,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Self {
        let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
        Self {
            body,
            content_type,
            hash,
        }
    }

    fn respond(&self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        // The URL carries the content hash, so it can be cached for good.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("../../static/app.css"),
        "text/css; charset=utf-8",
    )
});
pub static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        include_str!("../../static/app.js"),
        "text/javascript; charset=utf-8",
    )
});

pub static FAVICON: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("../../static/favicon.svg"), "image/svg+xml"));

async fn favicon() -> Response {
    FAVICON.respond()
}

async fn css() -> Response {
    CSS.respond()
}

async fn js() -> Response {
    JS.respond()
}

/// Every template, by name; `.html` names turn tera's autoescape on.
const TEMPLATES: [(&str, &str); 13] = [
    (
        "base.html",
        include_str!("../../../templates/tenant/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../templates/tenant/login.html"),
    ),
    (
        "setup.html",
        include_str!("../../../templates/tenant/setup.html"),
    ),
    (
        "boards.html",
        include_str!("../../../templates/tenant/boards.html"),
    ),
    (
        "board.html",
        include_str!("../../../templates/tenant/board.html"),
    ),
    (
        "item.html",
        include_str!("../../../templates/tenant/item.html"),
    ),
    (
        "settings.html",
        include_str!("../../../templates/tenant/settings.html"),
    ),
    (
        "webhooks.html",
        include_str!("../../../templates/tenant/webhooks.html"),
    ),
    (
        "tokens.html",
        include_str!("../../../templates/tenant/tokens.html"),
    ),
    (
        "users.html",
        include_str!("../../../templates/tenant/users.html"),
    ),
    (
        "health.html",
        include_str!("../../../templates/tenant/health.html"),
    ),
    (
        "flow.html",
        include_str!("../../../templates/tenant/flow.html"),
    ),
    (
        "error.html",
        include_str!("../../../templates/tenant/error.html"),
    ),
];

static TERA: LazyLock<Result<tera::Tera, String>> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates(TEMPLATES)
        .map_err(|e| format!("{e:?}"))?;
    Ok(tera)
});

/// Renders template `name` with `context`.
pub fn render_to_string(name: &str, context: &tera::Context) -> Result<String, WebError> {
    let tera = TERA
        .as_ref()
        .map_err(|e| WebError::Internal(format!("templates do not compile: {e}")))?;
    tera.render(name, context)
        .map_err(|e| WebError::Internal(format!("cannot render {name}: {e:?}")))
}

/// An HTML page with the dashboard's security headers.
pub fn page(name: &str, context: &tera::Context) -> Result<Response, WebError> {
    Ok(with_page_headers(
        Html(render_to_string(name, context)?).into_response(),
    ))
}

/// No inline script or style anywhere, so the CSP can forbid them.
pub fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What can go wrong while serving a page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in: go to the sign-in page, then come back.
    #[error("sign in first")]
    SignIn { next: String },
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        Self::Api(e.into())
    }
}

impl From<crate::store::CommandError> for WebError {
    fn from(e: crate::store::CommandError) -> Self {
        Self::Api(e.into())
    }
}

impl From<crate::commands::sessions::PasswordHashError> for WebError {
    fn from(e: crate::commands::sessions::PasswordHashError) -> Self {
        Self::Api(ApiError::internal(e))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::SignIn { next } => {
                let target = if next.starts_with('/') && !next.starts_with("//") {
                    format!("/login?next={}", pages::percent_encode(next))
                } else {
                    "/login".to_owned()
                };
                return Redirect::to(&target).into_response();
            }
            Self::Api(e) => {
                let (status, _, message, _) = e.parts();
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    // With its cause chain, like the API's 500s.
                    crate::telemetry::log_error("dashboard page failed", e);
                }
                (status, message)
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "something went wrong on our side; it has been logged".to_owned(),
                )
            }
        };
        let mut context = tera::Context::new();
        context.insert("status", &status.as_u16());
        context.insert("message", &message);
        context.insert("assets", &pages::AssetUrls::get());
        let body = render_to_string("error.html", &context)
            .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".to_owned());
        let mut response = with_page_headers(Html(body).into_response());
        *response.status_mut() = status;
        response
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests;
