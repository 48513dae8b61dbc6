//! Webhook subscriptions of a board, their delivery log, retries and
//! secret rotation.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery, AppJson, Auth, OptionalJson};
use crate::AppState;
use crate::commands;
use crate::delivery::ssrf;
use crate::domain::event::EventType;
use crate::domain::webhook;
use crate::domain::{DomainError, Scope};
use crate::store::webhooks::{self, Delivery, Webhook};
use crate::store::{self};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// http or https; must resolve to a public address unless the server
    /// runs with TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS=true.
    pub url: String,
    /// Event types to deliver; empty or absent: all.
    pub events: Option<Vec<EventType>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: the signing secret, shown only in this response.
    pub secret: String,
}

async fn checked_url(state: &AppState, url: &str) -> ApiResult<String> {
    if url.len() > 2000 {
        return Err(DomainError::validation("url", "must be at most 2000 characters").into());
    }
    ssrf::check_url(url, state.config.allow_private_webhooks)
        .await
        .map(|u| u.to_string())
        .map_err(|refused| DomainError::validation("url", refused.to_string()).into())
}

#[utoipa::path(post, path = "/api/boards/{id}/webhooks", tag = "webhooks", params(("id" = i64, Path)), request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookWithSecret), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "refused URL")))]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(board): ApiPath<i64>,
    AppJson(req): AppJson<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    let caller = auth.require(Scope::BoardAdmin)?;
    // Before the URL is resolved: an invisible board leaks nothing.
    if !webhook::may_manage(caller, board) {
        return Err(ApiError::NotFound("board".into()));
    }
    let url = checked_url(&state, &req.url).await?;
    let events = req.events.unwrap_or_default();
    let (webhook, secret) =
        commands::webhooks::create(&state.store, caller, board, &url, &events, store::now_ms())
            .await?;
    tracing::info!(webhook_id = webhook.id, board, "webhook created");
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret { webhook, secret }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

#[utoipa::path(get, path = "/api/boards/{id}/webhooks", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = WebhookList), (status = 404, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(board): ApiPath<i64>,
) -> ApiResult<Json<WebhookList>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    Ok(Json(WebhookList {
        webhooks: webhooks::list(&state.store.reader, caller, board).await?,
    }))
}

#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Webhook>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    Ok(Json(webhooks::get(&state.store.reader, caller, id).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
    /// Re-enabling clears a server-side disable.
    pub enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)), request_body = PatchWebhookRequest,
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    AppJson(req): AppJson<PatchWebhookRequest>,
) -> ApiResult<Json<Webhook>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    // Before the URL is resolved: an invisible webhook leaks nothing.
    webhooks::get(&state.store.reader, caller, id).await?;
    let url = match &req.url {
        Some(url) => Some(checked_url(&state, url).await?),
        None => None,
    };
    let updated = commands::webhooks::update(
        &state.store,
        caller,
        id,
        url.as_deref(),
        req.events.as_deref(),
        req.enabled,
        store::now_ms(),
    )
    .await?;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let caller = auth.require(Scope::BoardAdmin)?;
    commands::webhooks::delete(&state.store, caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps signing too (default 86400, max 7 days).
    pub overlap_seconds: Option<i64>,
}

#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = i64, Path)),
    request_body(content = Option<RotateRequest>, description = "optional"),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    OptionalJson(req): OptionalJson<RotateRequest>,
) -> ApiResult<Json<WebhookWithSecret>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let overlap_ms = webhook::rotation_overlap_ms(req.overlap_seconds)?;
    let (webhook, secret) =
        commands::webhooks::rotate_secret(&state.store, caller, id, overlap_ms, store::now_ms())
            .await?;
    Ok(Json(WebhookWithSecret { webhook, secret }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = i64, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let caller = auth.require(Scope::BoardAdmin)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 200".into()));
    }
    Ok(Json(DeliveryList {
        deliveries: webhooks::deliveries(&state.store.reader, caller, id, limit).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    pub status: &'static str,
}

#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    params(("id" = i64, Path), ("delivery" = i64, Path)),
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath((id, delivery)): ApiPath<(i64, i64)>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let caller = auth.require(Scope::BoardAdmin)?;
    commands::webhooks::retry(&state.store, caller, id, delivery, store::now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { status: "queued" })))
}
