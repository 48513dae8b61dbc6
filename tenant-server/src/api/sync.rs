//! `/api/boards/{id}/sync`: link a board to a GitHub or GitLab repository
//! (checked with the provider before answering), read, unlink, rotate the
//! webhook secret. Tokens and secrets are sealed before they are stored
//! and never returned; the webhook secret is shown only when created.

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiPath, AppJson, Auth};
use crate::AppState;
use crate::domain::error::DomainError;
use crate::domain::{Principal, Scope};
use crate::store::model::Timestamp;
use crate::store::{boards, now_ms};
use crate::sync::db::{self, LinkRow};
use crate::sync::provider::{Provider, ProviderError};
use crate::sync::status::{LinkView, view as link_status};
use crate::sync::{AnyProvider, ProviderKind};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The old webhook secret keeps working this long after a rotation.
const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    None,
    #[default]
    Open,
    All,
}

impl ImportMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Open => "open",
            Self::All => "all",
        }
    }
}

/// The body of `PUT /api/boards/{id}/sync` (and `"sync"` on `POST /api/boards`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub provider: ProviderKind,
    /// `owner/name` (GitHub: exactly two parts) or `group/sub/project`
    /// (GitLab: 2 to 20 parts); `.` and `..` are refused as parts.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100}){1,19}$")]
    pub repo: String,
    /// Default `https://api.github.com` or `https://gitlab.com/api/v4`.
    pub api_url: Option<String>,
    /// Else the server's `TASKHARBOR_GITHUB_TOKEN` / `TASKHARBOR_GITLAB_TOKEN`.
    #[schema(value_type = Option<String>)]
    pub token: Option<Token>,
    pub import: Option<ImportMode>,
    pub comments: Option<bool>,
    pub enabled: Option<bool>,
}

/// A provider token from a request: never printed, never returned.
#[derive(Clone)]
pub struct Token(pub SecretString);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(SecretString::from(s)))
    }
}

fn internal(e: sqlx::Error) -> super::error::ApiError {
    super::error::ApiError::Internal(e.into())
}

fn invalid(field: &str, message: impl Into<String>) -> super::error::ApiError {
    DomainError::validation(field, message).into()
}

fn valid_repo(kind: ProviderKind, repo: &str) -> bool {
    let parts: Vec<&str> = repo.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && *p != "."
            && *p != ".."
    };
    let count_ok = match kind {
        ProviderKind::Github => parts.len() == 2,
        ProviderKind::Gitlab => (2..=20).contains(&parts.len()),
    };
    count_ok && parts.iter().all(part_ok)
}

fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A link checked with the provider, ready to store on a board.
pub struct PreparedLink {
    req: LinkRequest,
    api_url: String,
}

/// Checks a link request: shape, target address, token, and (with sync
/// on) the repository and credentials with the provider itself.
pub async fn prepare(
    state: &AppState,
    board_id: Option<i64>,
    req: LinkRequest,
) -> ApiResult<PreparedLink> {
    use crate::domain::limits::{PROVIDER_TOKEN_MAX, REPO_MAX, URL_MAX};
    use secrecy::ExposeSecret;
    let too_long =
        |field: &str, max: usize| invalid(field, format!("must be at most {max} characters"));
    if req.repo.chars().count() > REPO_MAX {
        return Err(too_long("repo", REPO_MAX));
    }
    if req
        .api_url
        .as_ref()
        .is_some_and(|u| u.chars().count() > URL_MAX)
    {
        return Err(too_long("api_url", URL_MAX));
    }
    if req
        .token
        .as_ref()
        .is_some_and(|t| t.0.expose_secret().chars().count() > PROVIDER_TOKEN_MAX)
    {
        return Err(too_long("token", PROVIDER_TOKEN_MAX));
    }
    let repo = req.repo.trim().trim_matches('/').to_owned();
    if !valid_repo(req.provider, &repo) {
        return Err(invalid(
            "repo",
            match req.provider {
                ProviderKind::Github => "must be owner/name",
                ProviderKind::Gitlab => "must be group/project or group/sub/project",
            },
        ));
    }
    let raw_url = req
        .api_url
        .clone()
        .unwrap_or_else(|| req.provider.default_api_url().to_owned());
    // The shape here; the address through the same guard every connection uses.
    let url = crate::delivery::ssrf::check_url(&raw_url, true)
        .await
        .map_err(|e| invalid("api_url", e.to_string()))?;
    state
        .sync
        .guard(state.config.allow_private_webhooks)
        .check_url(&url)
        .await
        .map_err(|e| invalid("api_url", e))?;
    let api_url = url.as_str().trim_end_matches('/').to_owned();
    if let Some(other) =
        db::board_of_repo(&state.store.reader, req.provider.as_str(), &api_url, &repo)
            .await
            .map_err(|e| super::error::ApiError::Internal(e.into()))?
        && Some(other) != board_id
    {
        return Err(invalid("repo", format!("already linked to board {other}")));
    }
    // A PUT without a token keeps the link's own token, if it has one.
    let kept = match board_id {
        Some(id) => db::link(&state.store.reader, id)
            .await
            .map_err(|e| super::error::ApiError::Internal(e.into()))?
            .filter(|l| l.provider == req.provider.as_str())
            .and_then(|l| {
                l.token_sealed
                    .and_then(|t| state.sync.open_token(id, &t).ok())
            }),
        None => None,
    };
    let token = req
        .token
        .clone()
        .map(|t| t.0)
        .or(kept)
        .or_else(|| req.provider.server_token(state))
        .ok_or_else(|| {
            invalid(
                "token",
                "no token given and the server has none for this provider",
            )
        })?;
    if crate::sync::enabled(state) && req.enabled.unwrap_or(true) {
        // A throwaway limiter: the check must not wait behind the link's queue.
        let limiter = std::sync::Arc::new(crate::sync::limiter::Limiter::new(
            0,
            state.sync.metrics.rate_limit_waits.clone(),
        ));
        let provider = AnyProvider::new(
            req.provider,
            &api_url,
            &repo,
            &token,
            limiter,
            state.sync.guard(state.config.allow_private_webhooks),
        )
        .map_err(|e| invalid("api_url", e.to_string()))?;
        match provider.verify().await {
            Ok(()) => {}
            Err(ProviderError::NotFound) => {
                return Err(invalid(
                    "repo",
                    "the provider does not know this repository (or the token cannot see it)",
                ));
            }
            Err(ProviderError::Unauthorized) => {
                return Err(invalid(
                    "token",
                    "the provider refused the token, or it cannot write issues",
                ));
            }
            Err(ProviderError::Rejected { message, .. }) => return Err(invalid("repo", message)),
            Err(e) => {
                return Err(invalid(
                    "api_url",
                    format!("the provider could not be reached: {e}"),
                ));
            }
        }
    }
    Ok(PreparedLink {
        req: LinkRequest { repo, ..req },
        api_url,
    })
}

/// Stores a prepared link on `board_id`; returns it with a new secret if one was made.
pub async fn store_link(
    state: &AppState,
    board_id: i64,
    prepared: PreparedLink,
) -> ApiResult<LinkView> {
    let internal = |e: sqlx::Error| super::error::ApiError::Internal(e.into());
    let existing = db::link(&state.store.reader, board_id)
        .await
        .map_err(internal)?;
    let now = now_ms();
    let req = prepared.req;
    let (secret_sealed, shown, nonce, created_at, prev, prev_until) = match &existing {
        Some(l) => (
            l.secret_sealed.clone(),
            None,
            l.nonce.clone(),
            l.created_at,
            l.previous_secret_sealed.clone(),
            l.previous_until,
        ),
        None => {
            let secret = new_secret();
            let nonce = hex::encode(rand::random::<[u8; 8]>());
            (
                state.sync.seal_secret(board_id, &secret),
                Some(secret),
                nonce,
                now,
                None,
                None,
            )
        }
    };
    let import_mode = req.import.unwrap_or_default();
    let row = LinkRow {
        board_id,
        provider: req.provider.as_str().into(),
        repo: req.repo.clone(),
        api_url: prepared.api_url,
        token_sealed: match &req.token {
            Some(t) => Some(
                state
                    .sync
                    .seal_token(board_id, secrecy::ExposeSecret::expose_secret(&t.0)),
            ),
            None => existing
                .as_ref()
                .filter(|l| l.provider == req.provider.as_str())
                .and_then(|l| l.token_sealed.clone()),
        },
        secret_sealed,
        previous_secret_sealed: prev,
        previous_until: prev_until,
        nonce,
        import_mode: import_mode.as_str().into(),
        comments: req.comments.unwrap_or(true),
        enabled: req.enabled.unwrap_or(true),
        import_next: None,
        import_done: import_mode == ImportMode::None,
        poll_since: Some(Timestamp(now).to_rfc3339()),
        poll_etag: None,
        blocked_until: None,
        last_push_at: None,
        last_inbound_at: None,
        last_error: None,
        created_at,
        updated_at: now,
        comment_poll_since: None,
        comment_poll_etag: None,
    };
    db::save_link(&state.store.writer, &row)
        .await
        .map_err(internal)?;
    state.sync.wake();
    let stored = db::link(&state.store.reader, board_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| super::error::ApiError::NotFound("sync link".into()))?;
    link_status(state, &stored, shown).await.map_err(internal)
}

fn board_admin(auth: &Auth, board_id: i64) -> ApiResult<&Principal> {
    let caller = auth.require(Scope::BoardAdmin)?;
    if !caller.is_board_admin(board_id) {
        return Err(DomainError::NotFound("board").into());
    }
    Ok(caller)
}

async fn ensure_board(state: &AppState, caller: &Principal, board_id: i64) -> ApiResult<()> {
    boards::get(&state.store.reader, caller, board_id).await?;
    Ok(())
}

#[utoipa::path(put, path = "/api/boards/{id}/sync", tag = "sync", params(("id" = i64, Path)), request_body = LinkRequest,
    responses((status = 200, body = LinkView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_link(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    AppJson(req): AppJson<LinkRequest>,
) -> ApiResult<Json<LinkView>> {
    let caller = board_admin(&auth, id)?;
    ensure_board(&state, caller, id).await?;
    let prepared = prepare(&state, Some(id), req).await?;
    Ok(Json(store_link(&state, id, prepared).await?))
}

#[utoipa::path(get, path = "/api/boards/{id}/sync", tag = "sync", params(("id" = i64, Path)),
    responses((status = 200, body = LinkView), (status = 404, body = ErrorBody)))]
pub async fn get_link(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LinkView>> {
    let caller = auth.require(Scope::QueueRead)?;
    ensure_board(&state, caller, id).await?;
    let link = db::link(&state.store.reader, id)
        .await
        .map_err(|e| super::error::ApiError::Internal(e.into()))?
        .ok_or_else(|| super::error::ApiError::NotFound("sync link".into()))?;
    Ok(Json(
        link_status(&state, &link, None).await.map_err(internal)?,
    ))
}

#[utoipa::path(delete, path = "/api/boards/{id}/sync", tag = "sync", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_link(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let caller = board_admin(&auth, id)?;
    ensure_board(&state, caller, id).await?;
    if !db::delete_link(&state.store.writer, id)
        .await
        .map_err(|e| super::error::ApiError::Internal(e.into()))?
    {
        return Err(super::error::ApiError::NotFound("sync link".into()));
    }
    state.sync.wake();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/boards/{id}/sync/rotate-secret", tag = "sync", params(("id" = i64, Path)),
    responses((status = 200, body = LinkView), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<LinkView>> {
    let caller = board_admin(&auth, id)?;
    ensure_board(&state, caller, id).await?;
    let internal = |e: sqlx::Error| super::error::ApiError::Internal(e.into());
    let secret = new_secret();
    let now = now_ms();
    if !db::rotate_secret(
        &state.store.writer,
        id,
        &state.sync.seal_secret(id, &secret),
        now + ROTATION_GRACE_MS,
        now,
    )
    .await
    .map_err(internal)?
    {
        return Err(super::error::ApiError::NotFound("sync link".into()));
    }
    let link = db::link(&state.store.reader, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| super::error::ApiError::NotFound("sync link".into()))?;
    Ok(Json(
        link_status(&state, &link, Some(secret))
            .await
            .map_err(internal)?,
    ))
}
