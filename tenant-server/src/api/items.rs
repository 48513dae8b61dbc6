//! Items, their comments and their history.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery, AppJson, Auth, ClaimToken, IfMatch};
use super::{Cursor, nullable};
use crate::AppState;
use crate::domain::Scope;
use crate::domain::board::LaneRole;
use crate::domain::item::{
    CommentKind, ItemKind, ItemPatch, ItemPatchInput, NewComment, NewItem, NewItemInput,
};
use crate::store::items::ItemFilter;
use crate::store::model::{Comment, Event, Item};
use crate::store::{self, comments, events, items};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateItemRequest {
    pub title: String,
    pub body: Option<String>,
    pub kind: Option<ItemKind>,
    pub parent_id: Option<i64>,
    /// 0 (most urgent) to 4; default 2.
    pub priority: Option<i64>,
    pub labels: Option<Vec<String>>,
    pub agent_ready: Option<bool>,
    pub blocked_by: Option<Vec<i64>>,
    /// A backlog or ready lane; default: the first backlog lane (ready if agent_ready).
    pub lane_id: Option<i64>,
}

#[utoipa::path(post, path = "/api/boards/{id}/items", tag = "items", params(("id" = i64, Path)), request_body = CreateItemRequest,
    responses((status = 201, body = Item), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn create_item(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(board_id): ApiPath<i64>,
    AppJson(req): AppJson<CreateItemRequest>,
) -> ApiResult<(StatusCode, Json<Item>)> {
    let caller = auth.require(Scope::QueueWrite)?;
    let new = NewItem::parse(NewItemInput {
        title: &req.title,
        body: req.body.as_deref(),
        kind: req.kind,
        parent_id: req.parent_id,
        priority: req.priority,
        labels: req.labels.as_deref(),
        agent_ready: req.agent_ready,
        blocked_by: req.blocked_by.as_deref(),
        lane_id: req.lane_id,
    })?;
    let item =
        crate::commands::items::create(&state.store, caller, board_id, &new, store::now_ms())
            .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListItemsQuery {
    /// Lane role: backlog, ready, in_progress, review, blocked, done.
    pub status: Option<LaneRole>,
    pub kind: Option<ItemKind>,
    pub label: Option<String>,
    /// Worker id, worker name, or `me`.
    pub claimed_by: Option<String>,
    /// Text to find in title or body.
    pub q: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/boards/{id}/items", tag = "items", params(("id" = i64, Path), ListItemsQuery),
    responses((status = 200, body = ItemPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_items(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(board_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ListItemsQuery>,
) -> ApiResult<Json<ItemPage>> {
    let caller = auth.require(Scope::QueueRead)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 200".into()));
    }
    let after_id = match &query.cursor {
        Some(c) => Cursor::decode(c)?,
        None => 0,
    };
    let claimed_by = match query.claimed_by.as_deref() {
        None => None,
        Some("me") => Some(caller.worker_id),
        Some(value) => match value.parse::<i64>() {
            Ok(id) => Some(id),
            // An unknown name matches nothing rather than everything.
            Err(_) => Some(
                items::worker_id_by_name(&state.store.reader, value)
                    .await?
                    .unwrap_or(-1),
            ),
        },
    };
    let filter = ItemFilter {
        status: query.status,
        kind: query.kind,
        label: query.label.clone(),
        claimed_by,
        q: query.q.clone().filter(|q| !q.trim().is_empty()),
        after_id,
        limit: limit + 1,
    };
    let mut page = items::list(
        &state.store.reader,
        caller,
        board_id,
        &filter,
        store::now_ms(),
    )
    .await?;
    let next_cursor = if page.len() as i64 > limit {
        page.truncate(limit as usize);
        page.last().map(|i| Cursor::encode(i.id))
    } else {
        None
    };
    Ok(Json(ItemPage {
        items: page,
        next_cursor,
    }))
}

/// An item with `ETag: "<version>"`.
pub fn with_etag(item: Item) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", item.version)).ok();
    let mut response = Json(item).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[utoipa::path(get, path = "/api/items/{id}", tag = "items", params(("id" = i64, Path)),
    responses((status = 200, body = Item, headers(("ETag" = String, description = "the item's version, quoted"))), (status = 404, body = ErrorBody)))]
pub async fn get_item(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let caller = auth.require(Scope::QueueRead)?;
    Ok(with_etag(
        items::get(&state.store.reader, caller, id, store::now_ms()).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PatchItemRequest {
    pub title: Option<String>,
    pub body: Option<String>,
    pub kind: Option<ItemKind>,
    /// `null` detaches the item from its parent.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
    pub priority: Option<i64>,
    pub labels: Option<Vec<String>>,
    pub agent_ready: Option<bool>,
    pub blocked_by: Option<Vec<i64>>,
}

#[utoipa::path(patch, path = "/api/items/{id}", tag = "items", params(("id" = i64, Path),
        ("If-Match" = Option<String>, Header, description = "expected version"), ("X-Claim-Token" = Option<i64>, Header)),
    request_body = PatchItemRequest,
    responses((status = 200, body = Item), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn patch_item(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    IfMatch(if_match): IfMatch,
    ClaimToken(fence): ClaimToken,
    AppJson(req): AppJson<PatchItemRequest>,
) -> ApiResult<Response> {
    let caller = auth.require(Scope::QueueWrite)?;
    let patch = ItemPatch::parse(ItemPatchInput {
        title: req.title.as_deref(),
        body: req.body.as_deref(),
        kind: req.kind,
        parent_id: req.parent_id,
        priority: req.priority,
        labels: req.labels.as_deref(),
        agent_ready: req.agent_ready,
        blocked_by: req.blocked_by.as_deref(),
    })?;
    let item = crate::commands::items::update(
        &state.store,
        caller,
        id,
        &patch,
        if_match,
        fence,
        store::now_ms(),
    )
    .await?;
    Ok(with_etag(item))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateCommentRequest {
    pub body: String,
    pub kind: Option<CommentKind>,
}

#[utoipa::path(post, path = "/api/items/{id}/comments", tag = "items", params(("id" = i64, Path), ("X-Claim-Token" = Option<i64>, Header)),
    request_body = CreateCommentRequest,
    responses((status = 201, body = Comment), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn add_comment(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ClaimToken(fence): ClaimToken,
    AppJson(req): AppJson<CreateCommentRequest>,
) -> ApiResult<(StatusCode, Json<Comment>)> {
    let caller = auth.require(Scope::QueueWrite)?;
    let comment = NewComment::parse(&req.body, req.kind)?;
    let created = crate::commands::items::add_comment(
        &state.store,
        caller,
        id,
        &comment,
        fence,
        store::now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Only entries with an id greater than this.
    pub after: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<i64>,
}

impl PageQuery {
    pub fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::Invalid("limit must be between 1 and 500".into()));
        }
        Ok((self.after.unwrap_or(0), limit))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentList {
    pub comments: Vec<Comment>,
}

#[utoipa::path(get, path = "/api/items/{id}/comments", tag = "items", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = CommentList), (status = 404, body = ErrorBody)))]
pub async fn list_comments(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<CommentList>> {
    let caller = auth.require(Scope::QueueRead)?;
    let (after, limit) = page.bounds()?;
    Ok(Json(CommentList {
        comments: comments::list(&state.store.reader, caller, id, after, limit).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
}

#[utoipa::path(get, path = "/api/items/{id}/events", tag = "items", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = EventList), (status = 404, body = ErrorBody)))]
pub async fn item_events(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<EventList>> {
    let caller = auth.require(Scope::QueueRead)?;
    let (after, limit) = page.bounds()?;
    // Visibility check first: another board's item does not exist.
    items::get(&state.store.reader, caller, id, store::now_ms()).await?;
    Ok(Json(EventList {
        events: events::for_item(&state.store.reader, id, after, limit).await?,
    }))
}
