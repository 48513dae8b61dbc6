//! The one error shape of API.md:
//! `{"error": {"code", "message", "details"}}`, with a stable `code`.

use crate::domain::{DomainError, FieldErrors};
use crate::store::CommandError;
use crate::store::model::Timestamp;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `claim_conflict`.
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(String),
    #[error("a valid token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("too many requests")]
    RateLimited { retry_after_seconds: u64 },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::Command(CommandError::Rule(e))
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        Self::Command(CommandError::Rule(DomainError::Validation(e)))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Command(CommandError::Database(e))
    }
}

impl ApiError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// Status, code, message and details, as API.md lists them.
    pub fn parts(&self) -> (StatusCode, &'static str, String, Value) {
        let message = self.to_string();
        match self {
            Self::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                message,
                json!({}),
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", message, json!({})),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", message, json!({})),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", message, json!({})),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message,
                json!({"limit": limit}),
            ),
            Self::RateLimited {
                retry_after_seconds,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                message,
                json!({"retry_after": retry_after_seconds}),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                message,
                json!({}),
            ),
            Self::Command(CommandError::Rule(rule)) => domain_parts(rule),
            Self::Command(CommandError::Database(_) | CommandError::Writer(_))
            | Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on our side; it has been logged".into(),
                json!({}),
            ),
        }
    }
}

fn domain_parts(rule: &DomainError) -> (StatusCode, &'static str, String, Value) {
    let message = rule.to_string();
    match rule {
        DomainError::NotFound(what) => (
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
            json!({}),
        ),
        DomainError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", message, json!({})),
        DomainError::ClaimConflict {
            holder,
            claimed_at_ms,
            lease_expires_at_ms,
        } => (
            StatusCode::CONFLICT,
            "claim_conflict",
            format!(
                "{} holds this item until {}",
                holder.name,
                Timestamp(*lease_expires_at_ms).to_rfc3339()
            ),
            json!({"holder": holder, "claimed_at": Timestamp(*claimed_at_ms), "lease_expires_at": Timestamp(*lease_expires_at_ms)}),
        ),
        DomainError::ClaimLimitReached { limit, held } => (
            StatusCode::CONFLICT,
            "claim_limit_reached",
            message,
            json!({"limit": limit, "held": held}),
        ),
        DomainError::WipLimitReached { lane_id, limit } => (
            StatusCode::CONFLICT,
            "wip_limit_reached",
            message,
            json!({"lane_id": lane_id, "limit": limit}),
        ),
        DomainError::NotClaimable(_) => (StatusCode::CONFLICT, "not_claimable", message, json!({})),
        DomainError::NotHolder(_) => (StatusCode::CONFLICT, "not_holder", message, json!({})),
        DomainError::LeaseSuperseded { current } => (
            StatusCode::CONFLICT,
            "lease_superseded",
            message,
            json!({"current_token": current}),
        ),
        DomainError::VersionMismatch { current, expected } => (
            StatusCode::PRECONDITION_FAILED,
            "version_mismatch",
            message,
            json!({"current": current, "expected": expected}),
        ),
        DomainError::BoardLocked => (
            StatusCode::LOCKED,
            "board_locked",
            "the board is locked; only its admins may change it".into(),
            json!({}),
        ),
        DomainError::Validation(fields) => {
            let details: serde_json::Map<String, Value> =
                fields.iter().map(|(f, m)| (f.clone(), json!(m))).collect();
            let summary: Vec<String> = fields.iter().map(|(f, m)| format!("{f} {m}")).collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                summary.join("; "),
                Value::Object(details),
            )
        }
    }
}

/// Logs the whole cause chain of a 500; the client sees none of it.
fn log_internal(error: &ApiError) {
    crate::telemetry::log_error("request failed", error);
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            log_internal(&self);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message,
                details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        // Handlers record conflicts by code from here.
        response.extensions_mut().insert(ErrorCode(code));
        match &self {
            Self::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited {
                retry_after_seconds,
            } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// The `code` of an error response, for metrics middleware.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_500_shows_no_internals() {
        let cause = sqlx::Error::Protocol("table items is corrupt at page 4711".into());
        let response = ApiError::from(cause).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\"code\":\"internal\""), "{text}");
        assert!(
            !text.contains("4711") && !text.contains("corrupt"),
            "internals leaked: {text}"
        );
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }
}
