//! The queue: allowed, claim, claim-next, heartbeat, release, move.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery, AppJson, Auth, ClaimToken, OptionalJson};
use super::items::with_etag;
use crate::AppState;
use crate::commands::queue;
use crate::domain::Scope;
use crate::domain::board::LaneRole;
use crate::domain::item::ItemKind;
use crate::store::model::Item;
use crate::store::queue::{ClaimOutcome, ClaimedItem, MoveTarget, QueueFilter};
use crate::store::{self, CommandError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
pub struct AllowedQuery {
    pub board_id: Option<i64>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// Long-poll: if nothing is claimable now, wait up to this many
    /// seconds (≤ 60) and answer as soon as something is.
    pub wait: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllowedList {
    /// Held items first, then claimable ones by priority, then age.
    pub items: Vec<Item>,
}

const MAX_WAIT_SECONDS: u64 = 60;

#[utoipa::path(get, path = "/api/allowed", tag = "queue", params(AllowedQuery),
    responses((status = 200, body = AllowedList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn allowed(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<AllowedQuery>,
) -> ApiResult<Json<AllowedList>> {
    let caller = auth.require(Scope::QueueRead)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 200".into()));
    }
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::Invalid(format!(
            "wait must be at most {MAX_WAIT_SECONDS} seconds"
        )));
    }
    let filter = QueueFilter {
        board_id: query.board_id,
        ..QueueFilter::default()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Subscribe before the first read so no commit slips between them.
    let mut changes = state.changes.subscribe();
    loop {
        let items = crate::store::queue::allowed(
            &state.store.reader,
            caller,
            &filter,
            limit,
            store::now_ms(),
        )
        .await?;
        let claimable = items.iter().any(|i| {
            i.claim
                .as_ref()
                .is_none_or(|c| c.worker.id != caller.worker_id)
        });
        if claimable || tokio::time::Instant::now() >= deadline {
            return Ok(Json(AllowedList { items }));
        }
        // A commit wakes us at once; the timer is a backstop for writes
        // made by other processes (e.g. `taskharbor token create`).
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1))) => {}
        }
    }
}

/// Counts claim attempts by outcome: `claimed`, `renewed`, `empty`, or the error code.
fn count_claim<T>(
    state: &AppState,
    result: &Result<T, CommandError>,
    outcome: impl Fn(&T) -> &'static str,
) {
    let label = match result {
        Ok(value) => outcome(value),
        Err(CommandError::Rule(rule)) => ApiError::from(rule.clone()).parts().1,
        Err(_) => "error",
    };
    state.metrics.claims.with_label_values(&[label]).inc();
}

fn claim_outcome(outcome: ClaimOutcome) -> &'static str {
    match outcome {
        ClaimOutcome::New => "claimed",
        ClaimOutcome::Renewed => "renewed",
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ClaimRequest {
    /// Also move the item to the first in_progress lane (WIP limit applies).
    #[serde(default)]
    pub start: bool,
}

#[utoipa::path(post, path = "/api/items/{id}/claim", tag = "queue", params(("id" = i64, Path), ("X-Claim-Token" = Option<i64>, Header)),
    request_body(content = Option<ClaimRequest>, description = "optional"),
    responses((status = 200, body = ClaimedItem), (status = 409, body = ErrorBody, description = "claim_conflict, claim_limit_reached, wip_limit_reached, not_claimable, lease_superseded"),
        (status = 423, body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ClaimToken(fence): ClaimToken,
    OptionalJson(req): OptionalJson<ClaimRequest>,
) -> ApiResult<Json<ClaimedItem>> {
    let caller = auth.require(Scope::QueueWrite)?;
    let result = queue::claim(&state.store, caller, id, req.start, fence, store::now_ms()).await;
    count_claim(&state, &result, |(_, outcome)| claim_outcome(*outcome));
    let (claimed, _) = result?;
    Ok(Json(claimed))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ClaimNextRequest {
    pub board_id: Option<i64>,
    /// Only these kinds.
    pub kinds: Option<Vec<ItemKind>>,
    /// Items carrying any of these labels.
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub start: bool,
}

#[utoipa::path(post, path = "/api/claim-next", tag = "queue", request_body(content = Option<ClaimNextRequest>, description = "optional"),
    responses((status = 200, body = ClaimedItem), (status = 204, description = "nothing claimable"),
        (status = 409, body = ErrorBody, description = "claim_limit_reached, wip_limit_reached"), (status = 423, body = ErrorBody)))]
pub async fn claim_next(
    State(state): State<AppState>,
    auth: Auth,
    OptionalJson(req): OptionalJson<ClaimNextRequest>,
) -> ApiResult<Response> {
    let caller = auth.require(Scope::QueueWrite)?;
    let filter = QueueFilter {
        board_id: req.board_id,
        kinds: req.kinds.unwrap_or_default(),
        labels: req.labels.unwrap_or_default(),
    };
    let result = queue::claim_next(&state.store, caller, &filter, req.start, store::now_ms()).await;
    count_claim(&state, &result, |found| {
        found
            .as_ref()
            .map_or("empty", |(_, outcome)| claim_outcome(*outcome))
    });
    match result? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((claimed, _)) => Ok(Json(claimed).into_response()),
    }
}

#[utoipa::path(post, path = "/api/items/{id}/heartbeat", tag = "queue", params(("id" = i64, Path), ("X-Claim-Token" = Option<i64>, Header)),
    responses((status = 200, body = Item), (status = 409, body = ErrorBody, description = "not_holder, lease_superseded")))]
pub async fn heartbeat(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ClaimToken(fence): ClaimToken,
) -> ApiResult<Response> {
    let caller = auth.require(Scope::QueueWrite)?;
    Ok(with_etag(
        queue::heartbeat(&state.store, caller, id, fence, store::now_ms()).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReleaseRequest {
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/items/{id}/release", tag = "queue", params(("id" = i64, Path), ("X-Claim-Token" = Option<i64>, Header)),
    request_body(content = Option<ReleaseRequest>, description = "optional"),
    responses((status = 200, body = Item), (status = 409, body = ErrorBody, description = "not_holder, lease_superseded")))]
pub async fn release(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ClaimToken(fence): ClaimToken,
    OptionalJson(req): OptionalJson<ReleaseRequest>,
) -> ApiResult<Response> {
    let caller = auth.require(Scope::QueueWrite)?;
    if req
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 2000)
    {
        return Err(crate::domain::DomainError::validation(
            "reason",
            "must be at most 2000 characters",
        )
        .into());
    }
    let item = queue::release(
        &state.store,
        caller,
        id,
        req.reason.as_deref(),
        fence,
        store::now_ms(),
    )
    .await?;
    Ok(with_etag(item))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MoveRequest {
    pub lane_id: Option<i64>,
    /// The first lane with this role.
    pub status: Option<LaneRole>,
    /// Recorded as a comment; on the way to blocked, as a checkpoint.
    pub note: Option<String>,
}

#[utoipa::path(post, path = "/api/items/{id}/move", tag = "queue", params(("id" = i64, Path), ("X-Claim-Token" = Option<i64>, Header)),
    request_body = MoveRequest,
    responses((status = 200, body = Item), (status = 403, body = ErrorBody, description = "the lane's `who` forbids this worker kind"),
        (status = 409, body = ErrorBody, description = "wip_limit_reached, not_holder, claim_limit_reached, lease_superseded"),
        (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn move_item(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ClaimToken(fence): ClaimToken,
    AppJson(req): AppJson<MoveRequest>,
) -> ApiResult<Response> {
    let caller = auth.require(Scope::QueueWrite)?;
    let target = match (req.lane_id, req.status) {
        (Some(lane), None) => MoveTarget::Lane(lane),
        (None, Some(status)) => MoveTarget::Status(status),
        _ => {
            return Err(crate::domain::DomainError::validation(
                "lane_id",
                "give exactly one of lane_id or status",
            )
            .into());
        }
    };
    if req
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > 100_000)
    {
        return Err(crate::domain::DomainError::validation(
            "note",
            "must be at most 100000 characters",
        )
        .into());
    }
    let item = queue::move_item(
        &state.store,
        caller,
        id,
        target,
        req.note.as_deref(),
        fence,
        store::now_ms(),
    )
    .await?;
    Ok(with_etag(item))
}
