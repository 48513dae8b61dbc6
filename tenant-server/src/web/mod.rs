//! The dashboard (issue 5): server-rendered pages over the same API.
//! Not built yet: no routes.

pub mod session;

use crate::AppState;
use axum::Router;

/// The dashboard routes, with their state applied.
pub fn routes(_state: &AppState) -> Router {
    Router::new()
}
