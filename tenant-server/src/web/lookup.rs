//! `GET /boards/{id}/items/lookup?q=`: items of a board by key, number or
//! title words, as JSON for the dashboard's pickers (dependencies by key,
//! issue 14). Read-only, confined like every other read.

use super::WebError;
use super::pages::SignedIn;
use crate::AppState;
use crate::store::search;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct LookupQuery {
    pub q: Option<String>,
}

pub async fn lookup(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
    Query(query): Query<LookupQuery>,
) -> Result<Response, WebError> {
    let principal = session.user.principal();
    let found = search::find_items(
        &state.store.reader,
        &principal,
        id,
        query.q.as_deref().unwrap_or(""),
        10,
    )
    .await?;
    let mut response = Json(serde_json::json!({ "items": found })).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
