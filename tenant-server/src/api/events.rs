//! The event feed (`GET /api/events`) and its live form over Server-Sent
//! Events (`GET /api/events/stream`): `id:` is the event id, so a client
//! that reconnects with `Last-Event-ID` resumes with no gap and no
//! duplicate. Token scopes and board confinement apply as everywhere.

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiQuery, Auth};
use crate::AppState;
use crate::domain::{Principal, Scope};
use crate::store::model::Event;
use crate::store::{self, boards, events, tokens};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    pub board_id: Option<i64>,
    /// Only events with an id greater than this.
    pub after: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventFeed {
    pub events: Vec<Event>,
    /// Pass as `after` to continue.
    pub last_id: i64,
}

/// The board a feed is confined to: the token's own, the one asked for
/// (if visible), or none (an unconfined token asking for everything).
async fn feed_board(
    state: &AppState,
    caller: &Principal,
    asked: Option<i64>,
) -> ApiResult<Option<i64>> {
    match asked {
        Some(board) => {
            boards::get(&state.store.reader, caller, board).await?;
            Ok(Some(board))
        }
        None => Ok(caller.board_id),
    }
}

#[utoipa::path(get, path = "/api/events", tag = "events", params(FeedQuery),
    responses((status = 200, body = EventFeed), (status = 404, body = ErrorBody)))]
pub async fn feed(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> ApiResult<Json<EventFeed>> {
    let caller = auth.require(Scope::QueueRead)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 500".into()));
    }
    let board = feed_board(&state, caller, query.board_id).await?;
    let after = query.after.unwrap_or(0);
    let events = events::feed(&state.store.reader, board, after, limit).await?;
    let last_id = events.last().map_or(after, |e| e.id);
    Ok(Json(EventFeed { events, last_id }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    pub board_id: Option<i64>,
    /// Start after this event id (`Last-Event-ID` takes precedence);
    /// default: only events from now on.
    pub after: Option<i64>,
}

struct Tail {
    state: AppState,
    caller: Principal,
    board: Option<i64>,
    cursor: i64,
    pending: VecDeque<Event>,
    changes: tokio::sync::watch::Receiver<u64>,
    ended: bool,
}

/// Checks for new events when told of a commit, and at least every
/// second as a backstop; ends when the caller's token stops working.
async fn next_event(mut tail: Tail) -> Option<(Result<SseEvent, Infallible>, Tail)> {
    loop {
        if let Some(event) = tail.pending.pop_front() {
            let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
            let sse = SseEvent::default()
                .id(event.id.to_string())
                .event(event.kind.clone())
                .data(data);
            return Some((Ok(sse), tail));
        }
        if tail.ended {
            return None;
        }
        let now = store::now_ms();
        if tail.caller.token_id > 0
            && !tokens::still_valid(&tail.state.store.reader, tail.caller.token_id, now)
                .await
                .unwrap_or(false)
        {
            tail.ended = true;
            return None;
        }
        match events::feed(&tail.state.store.reader, tail.board, tail.cursor, 200).await {
            Ok(batch) if !batch.is_empty() => {
                tail.cursor = batch.last().map_or(tail.cursor, |e| e.id);
                tail.pending.extend(batch);
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "event stream read failed"),
        }
        tokio::select! {
            _ = tail.changes.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[utoipa::path(get, path = "/api/events/stream", tag = "events", params(StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream", description = "`id:` event id, `event:` type, `data:` the event JSON"),
        (status = 404, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let caller = auth.require(Scope::QueueRead)?.clone();
    let board = feed_board(&state, &caller, query.board_id).await?;
    let resume = match headers
        .get("last-event-id")
        .map(|v| v.to_str().map(|s| s.trim().parse::<i64>()))
    {
        None => None,
        Some(Ok(Ok(id))) => Some(id),
        Some(_) => {
            return Err(ApiError::Invalid(
                "Last-Event-ID must be an event id".into(),
            ));
        }
    };
    let cursor = match resume.or(query.after) {
        Some(id) => id,
        None => events::last_id(&state.store.reader, None).await?,
    };
    let changes = state.changes.subscribe();
    let tail = Tail {
        state,
        caller,
        board,
        cursor,
        pending: VecDeque::new(),
        changes,
        ended: false,
    };
    let stream = futures_util::stream::unfold(tail, next_event);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
