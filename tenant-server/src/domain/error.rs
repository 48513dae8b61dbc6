//! Why a command was refused, in the queue's own terms.
//!
//! Each variant maps to exactly one status and code of API.md in
//! `api::error`; the MCP tools map the same variants to tool errors.

use super::validate::FieldErrors;
use serde::Serialize;

/// A worker as shown in conflict details (`holder`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkerRef {
    pub id: i64,
    pub name: String,
    pub kind: super::WorkerKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{holder_name} holds this item until {lease_expires_at_ms}", holder_name = holder.name)]
    ClaimConflict {
        holder: WorkerRef,
        claimed_at_ms: i64,
        lease_expires_at_ms: i64,
    },
    #[error("you already hold {held} claims on this board (limit {limit})")]
    ClaimLimitReached { limit: i64, held: i64 },
    #[error(
        "the target lane already holds its WIP limit of {limit} items (details.lane_id names it)"
    )]
    WipLimitReached { lane_id: i64, limit: i64 },
    #[error("{0}")]
    NotClaimable(String),
    #[error("{0}")]
    NotHolder(String),
    #[error("{}", lease_superseded_message(*current))]
    LeaseSuperseded { current: Option<i64> },
    #[error("the item is at version {current}, not {expected}")]
    VersionMismatch { current: i64, expected: i64 },
    #[error("the board is locked")]
    BoardLocked,
    #[error("validation failed")]
    Validation(FieldErrors),
}

fn lease_superseded_message(current: Option<i64>) -> String {
    match current {
        Some(token) => format!(
            "the X-Claim-Token sent is not this item's current claim; the current claim's token is {token}"
        ),
        None => "the X-Claim-Token sent names a claim that has ended: the item is not claimed now"
            .into(),
    }
}

impl DomainError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::single(field, message))
    }
}

impl From<FieldErrors> for DomainError {
    fn from(errors: FieldErrors) -> Self {
        Self::Validation(errors)
    }
}
