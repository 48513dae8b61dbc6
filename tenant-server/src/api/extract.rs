//! Extractors that turn a request into checked values or an API.md error:
//! the caller (`Auth`), JSON bodies (`AppJson`, never axum's plain-text
//! rejections), path and query parameters, `X-Claim-Token`, `If-Match`.

use super::error::ApiError;
use crate::domain::{Principal, Scope};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes_alias::Bytes;
use serde::de::DeserializeOwned;

mod bytes_alias {
    pub use axum::body::Bytes;
}

/// The authenticated caller; `401` when the request carried no valid token.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// `403` unless the token has `scope` (scopes include the ones below).
    pub fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        if self.0.has(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Auth)
            .ok_or(ApiError::Unauthorized)
    }
}

/// The token a request carries: `Authorization: Bearer …` or `X-API-Key`.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The largest accepted body, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn body_error(rejection: BytesRejection, limit: BodyLimit) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit: limit.0 }
    } else {
        ApiError::Invalid(format!("could not read the request body: {rejection}"))
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "malformed JSON"
        } else {
            "invalid request body"
        };
        ApiError::Invalid(format!("{what}: {e}"))
    })
}

/// A required JSON body.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T>
where
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::Invalid(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, BodyLimit::from_ref(state)))?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T>
where
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = is_json(&req);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, BodyLimit::from_ref(state)))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !declared_json {
            return Err(ApiError::Invalid(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Path parameters; a non-integer id is `400`, not axum's plain text.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| {
                ApiError::Invalid(format!("invalid path: {}", e.body_text()))
            })
    }
}

/// Query parameters; unknown enum values and bad numbers are `400`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                ApiError::Invalid(format!("invalid query: {}", e.body_text()))
            })
    }
}

fn int_header(parts: &Parts, name: &str) -> Result<Option<String>, ApiError> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| ApiError::Invalid(format!("{name} must be ASCII"))),
    }
}

/// `X-Claim-Token`: the fencing token of the sender's claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimToken(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for ClaimToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match int_header(parts, "x-claim-token")? {
            None => Ok(ClaimToken(None)),
            Some(v) => v
                .parse::<i64>()
                .map(|t| ClaimToken(Some(t)))
                .map_err(|_| ApiError::Invalid("X-Claim-Token must be an integer".into())),
        }
    }
}

/// `If-Match: "<version>"` (`*` or absent: no precondition).
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match int_header(parts, "if-match")? {
            None => Ok(IfMatch(None)),
            Some(v) if v == "*" => Ok(IfMatch(None)),
            Some(v) => {
                let tag = v.trim_start_matches("W/").trim_matches('"');
                tag.parse::<i64>().map(|n| IfMatch(Some(n))).map_err(|_| {
                    ApiError::Invalid("If-Match must be an item version, e.g. \"5\"".into())
                })
            }
        }
    }
}
