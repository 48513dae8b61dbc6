//! The event types of API.md: every command appends one or more of these
//! to the history, in the same transaction as the change.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "item.created")]
    ItemCreated,
    #[serde(rename = "item.updated")]
    ItemUpdated,
    #[serde(rename = "item.agent-ready")]
    ItemAgentReady,
    #[serde(rename = "item.claimed")]
    ItemClaimed,
    #[serde(rename = "item.released")]
    ItemReleased,
    #[serde(rename = "item.claim-expired")]
    ItemClaimExpired,
    #[serde(rename = "item.moved")]
    ItemMoved,
    #[serde(rename = "item.done")]
    ItemDone,
    #[serde(rename = "comment.created")]
    CommentCreated,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        Self::ItemCreated,
        Self::ItemUpdated,
        Self::ItemAgentReady,
        Self::ItemClaimed,
        Self::ItemReleased,
        Self::ItemClaimExpired,
        Self::ItemMoved,
        Self::ItemDone,
        Self::CommentCreated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ItemCreated => "item.created",
            Self::ItemUpdated => "item.updated",
            Self::ItemAgentReady => "item.agent-ready",
            Self::ItemClaimed => "item.claimed",
            Self::ItemReleased => "item.released",
            Self::ItemClaimExpired => "item.claim-expired",
            Self::ItemMoved => "item.moved",
            Self::ItemDone => "item.done",
            Self::CommentCreated => "comment.created",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}
