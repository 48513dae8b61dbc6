//! `/api/tokens` and `/api/me`.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, AppJson, Auth};
use crate::AppState;
use crate::commands;
use crate::domain::error::WorkerRef;
use crate::domain::{Scope, WorkerKind};
use crate::store::model::{Item, Timestamp, TokenInfo};
use crate::store::tokens::{self, NewToken};
use crate::store::{self, CommandError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    pub name: String,
    pub kind: WorkerKind,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    pub worker: WorkerSpec,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
    /// RFC 3339; must be in the future.
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret: shown only in this response.
    pub token: String,
}

#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    AppJson(req): AppJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let now = store::now_ms();
    let expires_at = match &req.expires_at {
        None => None,
        Some(text) => Some(
            Timestamp::parse_rfc3339(text)
                .ok_or_else(|| {
                    ApiError::Invalid("expires_at must be an RFC 3339 timestamp".into())
                })?
                .0,
        ),
    };
    let token = NewToken::parse(
        &req.name,
        &req.worker.name,
        req.worker.kind,
        req.scopes,
        req.board_id,
        expires_at,
        now,
    )?;
    let (info, secret) = commands::tokens::create_by(&state.store, caller, &token, now).await?;
    tracing::info!(token_id = info.id, worker = %info.worker.name, "token minted");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info,
            token: secret,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[utoipa::path(get, path = "/api/tokens", tag = "tokens", responses((status = 200, body = TokenList)))]
pub async fn list_tokens(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<TokenList>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    Ok(Json(TokenList {
        tokens: tokens::list(&state.store.reader, caller).await?,
    }))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenInfo>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let info = commands::tokens::revoke(&state.store, caller, id, store::now_ms()).await?;
    tracing::info!(token_id = info.id, "token revoked");
    Ok(Json(info))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub worker: WorkerRef,
    pub token_id: i64,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
    /// Items this worker holds a live claim on.
    pub claims: Vec<Item>,
}

#[utoipa::path(get, path = "/api/me", tag = "tokens", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Me>> {
    let caller = &auth.0;
    let filter = crate::store::queue::QueueFilter::default();
    // `allowed` lists held items first; keep just those.
    let claims =
        crate::store::queue::allowed(&state.store.reader, caller, &filter, 1000, store::now_ms())
            .await
            .map_err(|e: CommandError| ApiError::from(e))?
            .into_iter()
            .filter(|i| {
                i.claim
                    .as_ref()
                    .is_some_and(|c| c.worker.id == caller.worker_id)
            })
            .collect();
    Ok(Json(Me {
        worker: caller.worker_ref(),
        token_id: caller.token_id,
        scopes: caller.scopes.clone(),
        board_id: caller.board_id,
        claims,
    }))
}
