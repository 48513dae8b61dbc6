//! `GET /api/boards/{id}/stats`: the board's flow analytics (issue 14) as
//! JSON, the same figures the dashboard's flow page draws.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery, Auth};
use crate::AppState;
use crate::domain::Scope;
use crate::domain::flow::{self, FlowReport};
use crate::store::{self, stats};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive; default: today. At most 366 days in all.
    pub to: Option<String>,
    /// `human`, `agent` or `all` (default): whose work to count.
    pub kind: Option<String>,
}

#[utoipa::path(get, path = "/api/boards/{id}/stats", tag = "boards", params(("id" = i64, Path), StatsQuery),
    responses((status = 200, body = FlowReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn board_stats(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> ApiResult<Json<FlowReport>> {
    let caller = auth.require(Scope::QueueRead)?;
    let range = flow::parse_range(
        query.from.as_deref(),
        query.to.as_deref(),
        query.kind.as_deref(),
        store::now_ms(),
    )?;
    Ok(Json(
        stats::board_flow(&state.store.reader, caller, id, range).await?,
    ))
}
