//! Dashboard sessions as an API credential: a signed-in human's browser
//! calls the same `/api` routes as agents, authenticated by its session
//! cookie, with CSRF protection on every state change.
//! (Issue 5 fills this in; until then no cookie authenticates.)

use crate::AppState;
use crate::api::error::ApiError;
use crate::domain::Principal;
use axum::http::{HeaderMap, Method};

/// The principal of a request's session cookie, if it carries a live one.
/// Mutating methods must also carry the session's CSRF token in
/// `X-CSRF-Token`, else `403 forbidden`.
pub async fn authenticate_cookie(
    _state: &AppState,
    _headers: &HeaderMap,
    _method: &Method,
) -> Result<Option<Principal>, ApiError> {
    Ok(None)
}
