//! A board's link as shown (state, pending, last push/inbound, webhook URL;
//! never a token or a stored secret): one view for the REST API and the
//! dashboard's sync panel.

use super::ProviderKind;
use super::db::{self, LinkRow};
use crate::AppState;
use crate::store::model::Timestamp;
use crate::store::now_ms;
use serde::Serialize;
use utoipa::ToSchema;

/// A board's link, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    pub provider: ProviderKind,
    pub repo: String,
    pub api_url: String,
    pub enabled: bool,
    pub comments: bool,
    pub import: String,
    pub webhook_url: String,
    /// Only in the answer that creates or rotates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// `ok`, `importing`, `rate_limited`, `error` or `off`.
    pub state: String,
    /// Items waiting to be pushed.
    pub pending: i64,
    pub last_push_at: Option<Timestamp>,
    pub last_inbound_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub rate_limited_until: Option<Timestamp>,
}

/// The board's link as shown (no secrets), for the dashboard.
pub async fn link_view(state: &AppState, board_id: i64) -> Result<Option<LinkView>, sqlx::Error> {
    match db::link(&state.store.reader, board_id).await? {
        Some(link) => Ok(Some(view(state, &link, None).await?)),
        None => Ok(None),
    }
}

/// The link `link` as shown; `secret` only in the answer that creates or rotates it.
pub async fn view(
    state: &AppState,
    link: &LinkRow,
    secret: Option<String>,
) -> Result<LinkView, sqlx::Error> {
    let pending = db::pending_count(&state.store.reader, link.board_id).await?;
    let now = now_ms();
    let rate_limited_until = link.blocked_until.filter(|t| *t > now);
    let status = if !super::enabled(state) || !link.enabled {
        "off"
    } else if !link.import_done && link.import_mode != "none" {
        "importing"
    } else if rate_limited_until.is_some() {
        "rate_limited"
    } else if link.last_error.is_some() {
        "error"
    } else {
        "ok"
    };
    Ok(LinkView {
        provider: ProviderKind::parse(&link.provider).unwrap_or(ProviderKind::Github),
        repo: link.repo.clone(),
        api_url: link.api_url.clone(),
        enabled: link.enabled,
        comments: link.comments,
        import: link.import_mode.clone(),
        webhook_url: format!(
            "{}/hooks/{}/{}",
            state.config.base_url().trim_end_matches('/'),
            link.provider,
            link.board_id
        ),
        webhook_secret: secret,
        state: status.into(),
        pending,
        last_push_at: link.last_push_at.map(Timestamp),
        last_inbound_at: link.last_inbound_at.map(Timestamp),
        last_error: link.last_error.clone(),
        rate_limited_until: rate_limited_until.map(Timestamp),
    })
}
