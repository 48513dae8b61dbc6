//! The one interface both providers implement, and the plain types that
//! cross it. The rest of sync speaks only these: what an issue looks like
//! remotely, what we send, and how a call failed (which decides whether a
//! retry is safe and when the next request may go out).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Open or closed, as both providers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    Open,
    Closed,
}

/// An issue as the provider holds it, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteIssue {
    /// GitHub `number`, GitLab `iid`.
    pub number: i64,
    pub title: String,
    pub body: String,
    /// Sorted, without duplicates.
    pub labels: Vec<String>,
    pub state: IssueState,
    pub url: String,
    /// Who opened it (for history of imported items).
    pub author: String,
    /// Provider timestamp (RFC 3339), for the reconciler's `since=`.
    pub updated_at: String,
    /// GitHub lists pull requests among issues; they are never synced.
    pub is_pull_request: bool,
}

/// What we want an issue to be; on update only the `Some` fields are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IssueChange {
    pub title: Option<String>,
    pub body: Option<String>,
    pub labels: Option<Vec<String>>,
    pub state: Option<IssueState>,
}

impl IssueChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A comment on an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteComment {
    pub id: i64,
    pub body: String,
    pub author: String,
    /// Provider timestamp (RFC 3339); empty when the provider gave none.
    pub updated_at: String,
    /// The issue it belongs to, when the answer says (GitHub's
    /// repository-wide listing names it only by `issue_url`).
    pub number: Option<i64>,
}

/// One page of a repository-wide comment listing.
#[derive(Debug, Clone, Default)]
pub struct CommentPage {
    pub comments: Vec<RemoteComment>,
    pub next: Option<String>,
    pub etag: Option<String>,
    pub not_modified: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct IssuePage {
    pub issues: Vec<RemoteIssue>,
    /// The provider's next page (absolute URL), if any.
    pub next: Option<String>,
    /// ETag of this answer, for `If-None-Match` next time.
    pub etag: Option<String>,
    /// `304 Not Modified`: nothing changed since `etag`.
    pub not_modified: bool,
}

/// Which issues a listing asks for.
#[derive(Debug, Clone, Default)]
pub struct IssueQuery {
    /// Only issues updated at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Include closed issues.
    pub include_closed: bool,
    /// Oldest first by creation (import) instead of by update (reconciler).
    pub by_created: bool,
    pub per_page: u32,
    /// Continue from a previous page's `next` instead.
    pub page_url: Option<String>,
    pub etag: Option<String>,
}

/// Why a provider call failed, and what that means for a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider asked us to wait (429, secondary limit, exhausted quota).
    #[error("rate limited by the provider for {0:?}")]
    RateLimited(Duration),
    /// The request may or may not have taken effect (timeout, reset, 5xx).
    #[error("unknown outcome: {0}")]
    Unknown(String),
    #[error("the provider refused the token")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    /// The provider rejected the request; retrying the same request will not help.
    #[error("rejected by the provider ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The provider answered something we cannot read.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The provider's host resolves to an address sync may not reach;
    /// no connection was made.
    #[error("{0}")]
    PrivateAddress(String),
}

impl ProviderError {
    /// Whether the request certainly had no effect (a create may be retried
    /// without looking for its result first).
    pub fn certainly_not_applied(&self) -> bool {
        matches!(
            self,
            Self::RateLimited(_)
                | Self::Unauthorized
                | Self::NotFound
                | Self::Rejected { .. }
                | Self::PrivateAddress(_)
        )
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// One issue tracker. Implementations send exactly one HTTP request per
/// call (no retries of their own: the outbox decides when to try again)
/// and report rate-limit headers through their limiter.
#[allow(async_fn_in_trait)] // called on concrete types only; their futures are Send.
pub trait Provider {
    /// The repository exists and the token may write issues to it.
    async fn verify(&self) -> ProviderResult<()>;
    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> ProviderResult<RemoteIssue>;
    async fn update_issue(&self, number: i64, change: &IssueChange) -> ProviderResult<RemoteIssue>;
    /// `Ok(None)` when the issue is gone (deleted, transferred, or a pull request).
    async fn get_issue(&self, number: i64) -> ProviderResult<Option<RemoteIssue>>;
    async fn list_issues(&self, query: &IssueQuery) -> ProviderResult<IssuePage>;
    async fn create_comment(&self, number: i64, body: &str) -> ProviderResult<RemoteComment>;
    /// The issue's comments, oldest first (one page of up to 100).
    async fn list_comments(&self, number: i64) -> ProviderResult<Vec<RemoteComment>>;
    /// Replaces a comment's text (the board's copy wins over a remote edit).
    async fn update_comment(
        &self,
        number: i64,
        comment_id: i64,
        body: &str,
    ) -> ProviderResult<RemoteComment>;
    /// The repository's comments updated at or after `query.since`, if the
    /// provider lists them repository-wide (GitHub); `None` if it does not
    /// (GitLab: the reconciler reads the notes of each updated issue).
    async fn poll_comments(&self, query: &IssueQuery) -> ProviderResult<Option<CommentPage>>;
}

/// Normalises a label list: sorted, unique.
pub fn sorted_labels(mut labels: Vec<String>) -> Vec<String> {
    labels.sort();
    labels.dedup();
    labels
}
