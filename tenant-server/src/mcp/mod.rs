//! The Model Context Protocol endpoint at `/mcp` (issue 4): thin over the
//! same store commands as the REST API. Not built yet: no routes.

use crate::AppState;
use axum::Router;

/// The `/mcp` routes, with their state applied.
pub fn routes(_state: &AppState) -> Router {
    Router::new()
}
