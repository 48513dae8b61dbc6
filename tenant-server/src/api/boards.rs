//! `/api/boards` and lanes.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiPath, AppJson, Auth};
use super::nullable;
use crate::AppState;
use crate::commands;
use crate::domain::Scope;
use crate::domain::auth::check_may_create_board;
use crate::domain::board::{BoardPatch, LanePatch, LaneRole, NewBoard, NewLane, Who};
use crate::store::model::{Board, Lane};
use crate::store::{self, boards};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBoardRequest {
    pub name: String,
    /// 2–10 upper-case letters and digits; items read as `KEY-42`.
    pub key: String,
    /// Link the new board to a GitHub or GitLab repository (as `PUT /api/boards/{id}/sync`).
    #[serde(default)]
    pub sync: Option<super::sync::LinkRequest>,
}

#[utoipa::path(post, path = "/api/boards", tag = "boards", request_body = CreateBoardRequest,
    responses((status = 201, body = Board), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_board(
    State(state): State<AppState>,
    auth: Auth,
    AppJson(req): AppJson<CreateBoardRequest>,
) -> ApiResult<(StatusCode, Json<Board>)> {
    let caller = auth.require(Scope::Admin)?;
    // Decided before the provider is asked about a link; the command
    // decides again with the same rule.
    check_may_create_board(caller)?;
    let board = NewBoard::parse(&req.name, &req.key)?;
    // The link is checked with the provider before the board exists, so a
    // refused link creates nothing.
    let link = match req.sync {
        Some(link) => Some(super::sync::prepare(&state, None, link).await?),
        None => None,
    };
    let created =
        commands::boards::create(&state.store, Some(caller), &board, store::now_ms()).await?;
    if let Some(link) = link {
        super::sync::store_link(&state, created.id, link).await?;
    }
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardList {
    pub boards: Vec<Board>,
}

#[utoipa::path(get, path = "/api/boards", tag = "boards", responses((status = 200, body = BoardList)))]
pub async fn list_boards(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<BoardList>> {
    let caller = auth.require(Scope::QueueRead)?;
    Ok(Json(BoardList {
        boards: boards::list(&state.store.reader, caller).await?,
    }))
}

#[utoipa::path(get, path = "/api/boards/{id}", tag = "boards", params(("id" = i64, Path)),
    responses((status = 200, body = Board), (status = 404, body = ErrorBody)))]
pub async fn get_board(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Board>> {
    let caller = auth.require(Scope::QueueRead)?;
    Ok(Json(boards::get(&state.store.reader, caller, id).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBoardRequest {
    pub name: Option<String>,
    pub locked: Option<bool>,
    pub claim_limit: Option<i64>,
    pub agent_lease_seconds: Option<i64>,
    pub human_lease_seconds: Option<i64>,
    pub agents_need_ready: Option<bool>,
}

#[utoipa::path(patch, path = "/api/boards/{id}", tag = "boards", params(("id" = i64, Path)), request_body = PatchBoardRequest,
    responses((status = 200, body = Board), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch_board(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    AppJson(req): AppJson<PatchBoardRequest>,
) -> ApiResult<Json<Board>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let patch = BoardPatch::parse(
        req.name.as_deref(),
        req.locked,
        req.claim_limit,
        req.agent_lease_seconds,
        req.human_lease_seconds,
        req.agents_need_ready,
    )?;
    Ok(Json(
        commands::boards::update(&state.store, caller, id, &patch, store::now_ms()).await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LaneList {
    pub lanes: Vec<Lane>,
}

#[utoipa::path(get, path = "/api/boards/{id}/lanes", tag = "lanes", params(("id" = i64, Path)), responses((status = 200, body = LaneList)))]
pub async fn list_lanes(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LaneList>> {
    let caller = auth.require(Scope::QueueRead)?;
    Ok(Json(LaneList {
        lanes: boards::list_lanes(&state.store.reader, caller, id).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLaneRequest {
    pub name: String,
    pub role: LaneRole,
    /// 0-based; default: last.
    pub position: Option<i64>,
    pub wip_limit: Option<i64>,
    pub who: Option<Who>,
}

#[utoipa::path(post, path = "/api/boards/{id}/lanes", tag = "lanes", params(("id" = i64, Path)), request_body = CreateLaneRequest,
    responses((status = 201, body = Lane), (status = 422, body = ErrorBody)))]
pub async fn create_lane(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    AppJson(req): AppJson<CreateLaneRequest>,
) -> ApiResult<(StatusCode, Json<Lane>)> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let lane = NewLane::parse(&req.name, req.role, req.position, req.wip_limit, req.who)?;
    Ok((
        StatusCode::CREATED,
        Json(commands::boards::create_lane(&state.store, caller, id, &lane).await?),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchLaneRequest {
    pub name: Option<String>,
    pub role: Option<LaneRole>,
    pub position: Option<i64>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub wip_limit: Option<Option<i64>>,
    pub who: Option<Who>,
}

#[utoipa::path(patch, path = "/api/lanes/{id}", tag = "lanes", params(("id" = i64, Path)), request_body = PatchLaneRequest,
    responses((status = 200, body = Lane), (status = 404, body = ErrorBody)))]
pub async fn patch_lane(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    AppJson(req): AppJson<PatchLaneRequest>,
) -> ApiResult<Json<Lane>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let patch = LanePatch::parse(
        req.name.as_deref(),
        req.role,
        req.position,
        req.wip_limit,
        req.who,
    )?;
    Ok(Json(
        commands::boards::update_lane(&state.store, caller, id, &patch).await?,
    ))
}

#[utoipa::path(delete, path = "/api/lanes/{id}", tag = "lanes", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_lane(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let caller = auth.require(Scope::BoardAdmin)?;
    commands::boards::delete_lane(&state.store, caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
