//! Cross-cutting request handling, in the order requests meet it:
//! metrics → JSON error shape for router-level errors → authentication and
//! per-token rate limits → `Idempotency-Key` replay → the handler.

use super::error::{ApiError, ErrorCode};
use super::extract::bearer_token;
use crate::AppState;
use crate::commands::{self, sessions};
use crate::domain::Principal;
use crate::edge::cookies;
use crate::store::{self, idempotency, tokens};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records latency by matched route template (never the raw path).
pub async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(req).await;
    let status = response.status();
    state
        .metrics
        .http_duration
        .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>()
        && status == StatusCode::CONFLICT
    {
        state.metrics.conflicts.with_label_values(&[code]).inc();
    }
    response
}

/// Router-level errors (unknown method) still answer in the API.md shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && response.extensions().get::<ErrorCode>().is_none()
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut replaced = ApiError::MethodNotAllowed.into_response();
        if let Some(allow) = allow {
            replaced.headers_mut().insert(header::ALLOW, allow);
        }
        return replaced;
    }
    response
}

/// A token bucket per token id.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request from `token`'s bucket; `Err(seconds)` when empty.
    pub fn check(&self, token: i64, per_second: u32) -> Result<(), u64> {
        if per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(per_second);
        let burst = rate * 2.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry(token).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// The one place a token secret becomes a caller, for the REST API and
/// `/mcp` alike: unknown, revoked or expired → `401`; over its rate →
/// `429`. A known token answers from the auth cache without touching the
/// database; its use is recorded in batches (`delivery::token_use`).
pub async fn principal_for_token(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    if !tokens::is_well_formed(secret) {
        return Err(ApiError::Unauthorized);
    }
    let now = store::now_ms();
    let hash = tokens::hash_secret(secret);
    let cache = &state.store.auth;
    let principal = match cache.get(&hash, now) {
        Some(principal) => principal,
        None => {
            let generation = cache.generation();
            let token = tokens::lookup(&state.store.reader, &hash, now)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            let principal = token.principal.clone();
            cache.fill(hash, generation, token, now);
            principal
        }
    };
    check_rate(state, &principal)?;
    Ok(principal)
}

/// The principal of a request's dashboard session cookie, if it carries a
/// live one, under the same per-caller rate limit as tokens (a session's
/// bucket is its user's). Mutating methods must also carry the session's
/// CSRF token in `X-CSRF-Token`, else `403 forbidden`.
async fn principal_for_cookie(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<Principal>, ApiError> {
    let Some(id) = cookies::cookie(headers, cookies::SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = sessions::authenticate(&state.store, id, store::now_ms()).await? else {
        return Ok(None);
    };
    let principal = session.user.principal();
    check_rate(state, &principal)?;
    if !cookies::is_safe(method) {
        sessions::check_csrf(&session, cookies::csrf_header(headers))?;
    }
    Ok(Some(principal))
}

/// Resolves the caller once per request and puts the `Principal` in the
/// request's extensions; handlers ask for it with the `Auth` extractor.
/// A request with no token passes through (public routes); one with a
/// token that does not work is `401` straight away.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(secret) = bearer_token(req.headers()).map(str::to_owned) else {
        // No token: a dashboard session cookie may stand in for one.
        if let Some(principal) = principal_for_cookie(&state, req.headers(), req.method()).await? {
            req.extensions_mut().insert(principal);
        }
        return Ok(next.run(req).await);
    };
    let principal = principal_for_token(&state, &secret).await?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// Serializes requests that share an idempotency key, so a retry racing
/// the original waits for it and then replays its answer.
#[derive(Debug, Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<KeyOwner, Arc<tokio::sync::Mutex<()>>>>,
}

/// (worker id, idempotency key)
type KeyOwner = (i64, String);

impl KeyLocks {
    fn lock_for(&self, worker: i64, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry((worker, key.to_owned())).or_default().clone()
    }
}

const REPLAYED: &str = "idempotent-replayed";

/// `Idempotency-Key` on a mutating `POST`: the first non-5xx answer is
/// kept for 24 hours and replayed for a retry with the same request.
pub async fn idempotency(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned));
    let (Some(key), Some(principal)) = (key, req.extensions().get::<Principal>().cloned()) else {
        return Ok(next.run(req).await);
    };
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let key = key.map_err(|_| ApiError::Invalid("Idempotency-Key must be ASCII".into()))?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Invalid(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)".into(),
        ));
    }
    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?
        .to_bytes();
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path());
    hasher.update([0]);
    hasher.update(&bytes);
    let request_hash = hasher.finalize().to_vec();

    let lock = state.key_locks.lock_for(principal.worker_id, &key);
    let _held = lock.lock().await;
    let now = store::now_ms();
    if let Some(stored) =
        idempotency::find(&state.store.reader, principal.worker_id, &key, now).await?
    {
        if stored.request_hash != request_hash {
            return Err(crate::domain::DomainError::validation(
                "Idempotency-Key",
                "was already used for a different request",
            )
            .into());
        }
        let mut response = Response::new(Body::from(stored.body));
        *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
        if let Some(ct) = stored
            .content_type
            .and_then(|ct| HeaderValue::from_str(&ct).ok())
        {
            response.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        return Ok(response);
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(ApiError::internal)?.to_bytes();
    let stored = idempotency::StoredResponse {
        request_hash,
        status: status.as_u16(),
        body: body.to_vec(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    commands::idempotency::remember(&state.store, principal.worker_id, &key, stored, now).await?;
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// The per-caller rate limit, one bucket per token (a session's is its
/// user's): `429` with `Retry-After` when the bucket is empty.
fn check_rate(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    state
        .rate_limiter
        .check(principal.token_id, state.config.rate_limit_per_second)
        .map_err(|retry_after_seconds| ApiError::RateLimited {
            retry_after_seconds,
        })
}
