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
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive; default: today. At most 366 days in all.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub to: Option<String>,
    /// `human`, `agent` or `all` (default): whose work to count.
    #[param(pattern = "^(human|agent|all)$")]
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
    exactly_as_documented(&query)?;
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

/// The API takes the values exactly as its document states them (the
/// dashboard's form is more forgiving: it trims and treats blanks as unset).
fn exactly_as_documented(query: &StatsQuery) -> Result<(), crate::domain::DomainError> {
    let is_day = |v: &str| {
        let b = v.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    };
    for (field, value) in [("from", &query.from), ("to", &query.to)] {
        if value.as_deref().is_some_and(|v| !is_day(v)) {
            return Err(crate::domain::DomainError::validation(
                field,
                "must be a date written YYYY-MM-DD",
            ));
        }
    }
    if query
        .kind
        .as_deref()
        .is_some_and(|k| !matches!(k, "human" | "agent" | "all"))
    {
        return Err(crate::domain::DomainError::validation(
            "kind",
            "must be human, agent or all",
        ));
    }
    Ok(())
}
