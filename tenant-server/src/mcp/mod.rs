//! The Model Context Protocol endpoint at `/mcp` (issue 4): MCP over
//! streamable HTTP with the official Rust SDK (`rmcp`), thin over the same
//! store commands as the REST API, so every queue rule, scope check and
//! error code is the REST API's. See docs/mcp.md.
//!
//! - [`routes`] mounts rmcp's `StreamableHttpService` behind [`authenticate`],
//!   which resolves the bearer token on every HTTP request (so revocation
//!   takes effect on the next request) and hands the `Principal` to the
//!   tools through the request's `http::request::Parts`.
//! - [`server`] is the `ServerHandler`: the tools, scope filtering, errors.
//! - [`resources`] is the workflow guide and items as resources.
//! - [`bridge`] is `taskharbor mcp --url`, a stdio-to-HTTP bridge.

pub mod bridge;
mod resources;
mod server;

use crate::AppState;
use crate::api::error::ApiError;
use crate::api::extract::bearer_token;
use crate::domain::Principal;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

pub use server::TaskHarborMcp;

/// The `/mcp` routes, with their state applied.
pub fn routes(state: &AppState) -> Router {
    // Host/Origin checks guard unauthenticated local servers against DNS
    // rebinding; here every request needs a bearer token that a browser
    // never attaches on its own, and the server answers on whatever host
    // name its ingress gives it, so the loopback-only default would only
    // break deployments.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_max_request_body_bytes(state.config.max_body_bytes);
    let for_sessions = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(TaskHarborMcp::new(for_sessions.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(from_fn_with_state(state.clone(), authenticate))
}

/// Every HTTP request to `/mcp` must carry a working token (`Authorization:
/// Bearer` or `X-API-Key`, as for the REST API; no session cookies): `401`
/// with `WWW-Authenticate: Bearer` otherwise. The caller rides along in the
/// request's extensions, which rmcp passes to the handler as `Parts`.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(secret) = bearer_token(req.headers()).map(str::to_owned) else {
        return ApiError::Unauthorized.into_response();
    };
    let principal = match crate::api::middleware::principal_for_token(&state, &secret).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    if req.method() == axum::http::Method::GET {
        // No standalone SSE stream: the server never speaks first, and an
        // idle stream per client would hold graceful shutdown for its whole
        // grace period. The spec's answer for that is 405.
        let mut refused = axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response();
        refused.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static("POST, DELETE"),
        );
        return refused;
    }
    req.extensions_mut().insert(principal);
    let ends_session = req.method() == axum::http::Method::DELETE;
    let mut response = next.run(req).await;
    if ends_session && response.status() == axum::http::StatusCode::ACCEPTED {
        // rmcp answers a session DELETE with 202; clients expect 200/204.
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    response
}

/// The caller of the MCP request being handled, as [`authenticate`] found it.
fn caller_of(context: &RequestContext<RoleServer>) -> Option<Principal> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
}
