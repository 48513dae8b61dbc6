//! Two-way GitHub and GitLab sync: the board is the truth, a linked
//! repository mirrors it (docs/sync.md has the design).
//!
//! - `provider`: the one trait; `github` (octocrab) and `gitlab` (reqwest) implement it.
//! - `mapping`: item ⇄ issue as pure functions (desired state, diff, three-way merge).
//! - `db`: the sync tables; the outbox is filled by a trigger on the history.
//! - `limiter`: one repository's pace (provider rate limits, our spacing).
//! - `worker`: one serial task per linked board: inbox, import, outbox, reconciler.
//! - `hooks`: `POST /hooks/{github,gitlab}/{board_id}` (verify, store, 2xx).
//! - `crypto`: secrets sealed at rest.
//! - `net`: the resolver both clients connect through (no private addresses).
//! - `status`: a link as shown (REST and the dashboard's panel).
//!
//! Sync is an edge like REST or MCP: inbound changes go through the same
//! store commands, acting as a worker named after the remote user.

pub mod crypto;
pub mod db;
pub mod github;
pub mod gitlab;
pub mod hooks;
pub mod limiter;
pub mod mapping;
pub mod net;
pub mod provider;
pub mod status;
pub mod worker;

use crate::AppState;
use crate::config::Switch;
use limiter::Limiter;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use provider::{
    CommentPage, IssueChange, IssuePage, IssueQuery, Provider, ProviderError, ProviderResult,
    RemoteComment, RemoteIssue,
};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The sync series on /metrics.
#[derive(Clone, Debug)]
pub struct SyncMetrics {
    pub pushes: IntCounterVec,
    pub inbound: IntCounterVec,
    pub rate_limit_waits: IntCounter,
    pub queue_depth: IntGauge,
}

impl SyncMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let pushes = IntCounterVec::new(
            Opts::new("sync_pushes_total", "Outbound sync pushes by outcome"),
            &["outcome"],
        )?;
        let inbound = IntCounterVec::new(
            Opts::new("sync_inbound_total", "Inbound sync deliveries by outcome"),
            &["outcome"],
        )?;
        let rate_limit_waits = IntCounter::new(
            "sync_rate_limit_waits_total",
            "Provider calls that waited for a rate limit or the minimum interval",
        )?;
        let queue_depth = IntGauge::new("sync_queue_depth", "Items waiting to be pushed")?;
        registry.register(Box::new(pushes.clone()))?;
        registry.register(Box::new(inbound.clone()))?;
        registry.register(Box::new(rate_limit_waits.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        Ok(Self {
            pushes,
            inbound,
            rate_limit_waits,
            queue_depth,
        })
    }
}

/// What the server shares with sync: the key, wake-ups, metrics, and one
/// limiter per linked board (one repository each).
pub struct SyncShared {
    pub keys: crypto::SecretBox,
    pub wake: tokio::sync::watch::Sender<u64>,
    pub metrics: SyncMetrics,
    limiters: Mutex<HashMap<i64, Arc<Limiter>>>,
    lookup: std::sync::RwLock<Arc<dyn net::Lookup>>,
}

impl std::fmt::Debug for SyncShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncShared(..)")
    }
}

impl SyncShared {
    pub fn new(keys: crypto::SecretBox, metrics: SyncMetrics) -> Self {
        Self {
            keys,
            wake: tokio::sync::watch::channel(0).0,
            metrics,
            limiters: Mutex::default(),
            lookup: std::sync::RwLock::new(Arc::new(net::SystemLookup)),
        }
    }

    /// Replaces how host names are looked up (tests drive DNS with it).
    pub fn set_lookup(&self, lookup: Arc<dyn net::Lookup>) {
        *self.lookup.write().unwrap_or_else(|p| p.into_inner()) = lookup;
    }

    /// The resolver provider clients connect through.
    pub fn guard(&self, allow_private: bool) -> net::Guard {
        let lookup = self
            .lookup
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        net::Guard::new(lookup, allow_private)
    }

    /// Wakes the workers (a delivery arrived, a link changed).
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The board's limiter (one per repository; a link holds one repository).
    pub fn limiter(&self, board_id: i64, min_interval_ms: u64) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(board_id)
            .or_insert_with(|| {
                Arc::new(Limiter::new(
                    min_interval_ms,
                    self.metrics.rate_limit_waits.clone(),
                ))
            })
            .clone()
    }

    pub fn seal_token(&self, board_id: i64, token: &str) -> String {
        self.keys.seal(&format!("sync-token:{board_id}"), token)
    }

    pub fn open_token(
        &self,
        board_id: i64,
        sealed: &str,
    ) -> Result<SecretString, crypto::DecryptError> {
        self.keys.open(&format!("sync-token:{board_id}"), sealed)
    }

    pub fn seal_secret(&self, board_id: i64, secret: &str) -> String {
        self.keys.seal(&format!("sync-webhook:{board_id}"), secret)
    }

    pub fn open_secret(
        &self,
        board_id: i64,
        sealed: &str,
    ) -> Result<SecretString, crypto::DecryptError> {
        self.keys.open(&format!("sync-webhook:{board_id}"), sealed)
    }
}

/// Whether the server runs sync at all (`--sync on|off`).
pub fn enabled(state: &AppState) -> bool {
    state.config.sync == Switch::On
}

/// Either provider, chosen by the link.
#[derive(Debug)]
pub enum AnyProvider {
    GitHub(github::GitHub),
    GitLab(gitlab::GitLab),
}

/// Which provider a link names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Github,
    Gitlab,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "github" => Some(Self::Github),
            "gitlab" => Some(Self::Gitlab),
            _ => None,
        }
    }

    /// The provider's name in prose.
    pub fn display(self) -> &'static str {
        match self {
            Self::Github => "GitHub",
            Self::Gitlab => "GitLab",
        }
    }

    pub fn default_api_url(self) -> &'static str {
        match self {
            Self::Github => github::DEFAULT_API_URL,
            Self::Gitlab => gitlab::DEFAULT_API_URL,
        }
    }

    /// The server-wide token for this provider, if configured.
    pub fn server_token(self, state: &AppState) -> Option<SecretString> {
        match self {
            Self::Github => state.config.github_token.clone(),
            Self::Gitlab => state.config.gitlab_token.clone(),
        }
    }
}

impl AnyProvider {
    pub fn new(
        kind: ProviderKind,
        api_url: &str,
        repo: &str,
        token: &SecretString,
        limiter: Arc<Limiter>,
        guard: net::Guard,
    ) -> ProviderResult<Self> {
        Ok(match kind {
            ProviderKind::Github => {
                Self::GitHub(github::GitHub::new(api_url, repo, token, limiter, guard)?)
            }
            ProviderKind::Gitlab => {
                Self::GitLab(gitlab::GitLab::new(api_url, repo, token, limiter, guard)?)
            }
        })
    }

    /// The provider for a stored link (its token, or the server's).
    pub fn for_link(state: &AppState, link: &db::LinkRow) -> ProviderResult<Self> {
        let kind = ProviderKind::parse(&link.provider).ok_or_else(|| {
            ProviderError::Protocol(format!("unknown provider {}", link.provider))
        })?;
        let token = match &link.token_sealed {
            Some(sealed) => state
                .sync
                .open_token(link.board_id, sealed)
                .map_err(|e| ProviderError::Protocol(e.to_string()))?,
            None => kind
                .server_token(state)
                .ok_or(ProviderError::Unauthorized)?,
        };
        let limiter = state
            .sync
            .limiter(link.board_id, state.config.sync_min_interval_ms);
        Self::new(
            kind,
            &link.api_url,
            &link.repo,
            &token,
            limiter,
            state.sync.guard(state.config.allow_private_webhooks),
        )
    }
}

impl Provider for AnyProvider {
    async fn verify(&self) -> ProviderResult<()> {
        match self {
            Self::GitHub(p) => p.verify().await,
            Self::GitLab(p) => p.verify().await,
        }
    }

    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> ProviderResult<RemoteIssue> {
        match self {
            Self::GitHub(p) => p.create_issue(title, body, labels).await,
            Self::GitLab(p) => p.create_issue(title, body, labels).await,
        }
    }

    async fn update_issue(&self, number: i64, change: &IssueChange) -> ProviderResult<RemoteIssue> {
        match self {
            Self::GitHub(p) => p.update_issue(number, change).await,
            Self::GitLab(p) => p.update_issue(number, change).await,
        }
    }

    async fn get_issue(&self, number: i64) -> ProviderResult<Option<RemoteIssue>> {
        match self {
            Self::GitHub(p) => p.get_issue(number).await,
            Self::GitLab(p) => p.get_issue(number).await,
        }
    }

    async fn list_issues(&self, query: &IssueQuery) -> ProviderResult<IssuePage> {
        match self {
            Self::GitHub(p) => p.list_issues(query).await,
            Self::GitLab(p) => p.list_issues(query).await,
        }
    }

    async fn create_comment(&self, number: i64, body: &str) -> ProviderResult<RemoteComment> {
        match self {
            Self::GitHub(p) => p.create_comment(number, body).await,
            Self::GitLab(p) => p.create_comment(number, body).await,
        }
    }

    async fn list_comments(&self, number: i64) -> ProviderResult<Vec<RemoteComment>> {
        match self {
            Self::GitHub(p) => p.list_comments(number).await,
            Self::GitLab(p) => p.list_comments(number).await,
        }
    }

    async fn update_comment(
        &self,
        number: i64,
        comment_id: i64,
        body: &str,
    ) -> ProviderResult<RemoteComment> {
        match self {
            Self::GitHub(p) => p.update_comment(number, comment_id, body).await,
            Self::GitLab(p) => p.update_comment(number, comment_id, body).await,
        }
    }

    async fn poll_comments(&self, query: &IssueQuery) -> ProviderResult<Option<CommentPage>> {
        match self {
            Self::GitHub(p) => p.poll_comments(query).await,
            Self::GitLab(p) => p.poll_comments(query).await,
        }
    }
}
