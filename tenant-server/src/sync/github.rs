//! GitHub (and GitHub Enterprise) through octocrab: octocrab owns the
//! requests, authentication and base URL, over a hyper connector of ours
//! whose resolver is the sync guard (`net`: no private addresses on any
//! connect); its retry layer is not compiled in (the outbox decides about
//! retries, so a lost create never becomes a duplicate). Each call is one
//! request whose status and rate-limit headers we read ourselves, into
//! the typed structs below.

use super::limiter::{CallKind, Limiter};
use super::net::{Guard, transport_error};
use super::provider::{
    CommentPage, IssueChange, IssuePage, IssueQuery, IssueState, Provider, ProviderError,
    ProviderResult, RemoteComment, RemoteIssue, sorted_labels,
};
use http::header::{ETAG, IF_NONE_MATCH, LINK, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use octocrab::service::middleware::auth_header::AuthHeaderLayer;
use octocrab::service::middleware::base_uri::BaseUriLayer;
use octocrab::service::middleware::extra_headers::ExtraHeadersLayer;
use octocrab::{AuthState, Octocrab, OctocrabBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// How long one call (answer and body) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /repos/{owner}/{repo}` (the fields we read).
#[derive(Debug, Deserialize)]
pub struct GhRepository {
    pub full_name: String,
    #[serde(default)]
    pub has_issues: Option<bool>,
    #[serde(default)]
    pub permissions: Option<GhPermissions>,
}

#[derive(Debug, Deserialize)]
pub struct GhPermissions {
    #[serde(default)]
    pub push: bool,
    #[serde(default)]
    pub triage: bool,
}

#[derive(Debug, Deserialize)]
pub struct GhUser {
    pub login: String,
}

#[derive(Debug, Deserialize)]
pub struct GhLabel {
    pub name: String,
}

/// An issue as GitHub sends it (REST and webhook payloads alike).
#[derive(Debug, Deserialize)]
pub struct GhIssue {
    pub number: i64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub state: String,
    pub html_url: String,
    #[serde(default)]
    pub labels: Vec<GhLabel>,
    #[serde(default)]
    pub user: Option<GhUser>,
    pub updated_at: String,
    #[serde(default)]
    pub pull_request: Option<serde::de::IgnoredAny>,
}

impl From<GhIssue> for RemoteIssue {
    fn from(i: GhIssue) -> Self {
        Self {
            number: i.number,
            title: i.title,
            body: i.body.unwrap_or_default(),
            labels: sorted_labels(i.labels.into_iter().map(|l| l.name).collect()),
            state: if i.state == "closed" {
                IssueState::Closed
            } else {
                IssueState::Open
            },
            url: i.html_url,
            author: i.user.map(|u| u.login).unwrap_or_default(),
            updated_at: i.updated_at,
            is_pull_request: i.pull_request.is_some(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct GhComment {
    pub id: i64,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub user: Option<GhUser>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// `…/repos/{owner}/{repo}/issues/{number}`: which issue it is on.
    #[serde(default)]
    pub issue_url: Option<String>,
    /// `…/pull/{n}#issuecomment-…` for a comment on a pull request.
    #[serde(default)]
    pub html_url: Option<String>,
}

/// The issue number at the end of an `issue_url`.
pub fn number_of_issue_url(url: &str) -> Option<i64> {
    url.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

impl From<GhComment> for RemoteComment {
    fn from(c: GhComment) -> Self {
        Self {
            id: c.id,
            body: c.body.unwrap_or_default(),
            author: c.user.map(|u| u.login).unwrap_or_default(),
            updated_at: c.updated_at.unwrap_or_default(),
            // Pull requests are issues to GitHub, never to us: a comment on
            // one names no issue, so the reconciler passes it by.
            number: if c.html_url.as_deref().is_some_and(|u| u.contains("/pull/")) {
                None
            } else {
                c.issue_url.as_deref().and_then(number_of_issue_url)
            },
        }
    }
}

/// `POST /repos/{owner}/{repo}/issues`.
#[derive(Debug, Serialize)]
pub struct GhCreateIssue<'a> {
    pub title: &'a str,
    pub body: &'a str,
    pub labels: &'a [String],
}

/// `PATCH /repos/{owner}/{repo}/issues/{number}`.
#[derive(Debug, Serialize)]
pub struct GhUpdateIssue<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct GhCreateComment<'a> {
    pub body: &'a str,
}

#[derive(Debug, Deserialize)]
struct GhError {
    #[serde(default)]
    message: String,
}

/// The body type of octocrab's raw calls.
type RawBody = http_body_util::combinators::BoxBody<axum::body::Bytes, octocrab::Error>;

pub struct GitHub {
    client: Octocrab,
    repo: String,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").field("repo", &self.repo).finish()
    }
}

impl GitHub {
    pub fn new(
        api_url: &str,
        repo: &str,
        token: &SecretString,
        limiter: Arc<Limiter>,
        guard: Guard,
    ) -> ProviderResult<Self> {
        let bad_url = |e: String| ProviderError::Protocol(format!("api_url: {e}"));
        let url = url::Url::parse(api_url).map_err(|e| bad_url(e.to_string()))?;
        guard
            .check_literal(&url)
            .map_err(|e| ProviderError::PrivateAddress(e.to_string()))?;
        let base: http::Uri = api_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad_url(e.to_string()))?;
        let mut http = HttpConnector::new_with_resolver(guard);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ProviderError::Protocol(format!("tls: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        let mut auth: HeaderValue = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| ProviderError::Unauthorized)?;
        auth.set_sensitive(true);
        // The same stack octocrab's own builder makes, minus its connector:
        // user agent, base URI, and the token only for the API's own host.
        let client = OctocrabBuilder::new_empty()
            .with_service(client)
            .with_layer(&BaseUriLayer::new(base.clone()))
            .with_layer(&ExtraHeadersLayer::new(Arc::new(vec![(
                USER_AGENT,
                HeaderValue::from_static("octocrab"),
            )])))
            .with_layer(&AuthHeaderLayer::new(Some(auth), base.clone(), base))
            .with_auth(AuthState::None)
            .build()
            .map_err(|e| ProviderError::Protocol(format!("client: {e}")))?;
        Ok(Self {
            client,
            repo: repo.to_owned(),
            limiter,
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.repo)
    }

    /// Sends one request; returns status, headers and body text.
    /// Waits for the limiter, sends (octocrab futures start only when
    /// awaited), and reads the answer and its rate-limit headers.
    async fn send(
        &self,
        kind: CallKind,
        request: impl Future<Output = octocrab::Result<http::Response<RawBody>>>,
    ) -> ProviderResult<(u16, HeaderMap, String)> {
        self.limiter.ready(kind).await;
        let response = tokio::time::timeout(CALL_TIMEOUT, request).await;
        if kind != CallKind::Read {
            self.limiter.mutation_done();
        }
        let response = response
            .map_err(|_| ProviderError::Unknown("no answer in time".into()))?
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(CALL_TIMEOUT, self.client.body_to_string(response))
            .await
            .map_err(|_| ProviderError::Unknown("the answer stalled".into()))?
            .map_err(|e| ProviderError::Unknown(format!("reading the answer: {e}")))?;
        if let Some(wait) = self.limiter.observe(status, &headers, &body) {
            return Err(ProviderError::RateLimited(wait));
        }
        Ok((status, headers, body))
    }

    fn check(status: u16, body: &str) -> ProviderResult<()> {
        match status {
            200..=299 | 304 => Ok(()),
            401 => Err(ProviderError::Unauthorized),
            404 | 410 => Err(ProviderError::NotFound),
            408 | 500..=599 => Err(ProviderError::Unknown(format!("HTTP {status}"))),
            _ => Err(ProviderError::Rejected {
                status,
                message: serde_json::from_str::<GhError>(body)
                    .map(|e| e.message)
                    .unwrap_or_default(),
            }),
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> ProviderResult<T> {
        serde_json::from_str(body).map_err(|e| ProviderError::Protocol(e.to_string()))
    }
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

impl Provider for GitHub {
    async fn verify(&self) -> ProviderResult<()> {
        let kind = CallKind::Read;
        let (status, _, body) = self
            .send(kind, self.client._get(self.repo_path("")))
            .await?;
        Self::check(status, &body)?;
        let repo: GhRepository = Self::parse(&body)?;
        if repo.has_issues == Some(false) {
            return Err(ProviderError::Rejected {
                status,
                message: format!("{} has issues turned off", repo.full_name),
            });
        }
        if repo.permissions.is_some_and(|p| !p.push && !p.triage) {
            return Err(ProviderError::Unauthorized);
        }
        Ok(())
    }

    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> ProviderResult<RemoteIssue> {
        let kind = CallKind::Create;
        let request = GhCreateIssue {
            title,
            body,
            labels,
        };
        let (status, _, text) = self
            .send(
                kind,
                self.client._post(self.repo_path("/issues"), Some(&request)),
            )
            .await?;
        Self::check(status, &text)?;
        Ok(Self::parse::<GhIssue>(&text)?.into())
    }

    async fn update_issue(&self, number: i64, change: &IssueChange) -> ProviderResult<RemoteIssue> {
        let kind = CallKind::Mutation;
        let request = GhUpdateIssue {
            title: change.title.as_deref(),
            body: change.body.as_deref(),
            labels: change.labels.as_deref(),
            state: change.state.map(|s| match s {
                IssueState::Open => "open",
                IssueState::Closed => "closed",
            }),
            state_reason: match change.state {
                Some(IssueState::Closed) => Some("completed"),
                Some(IssueState::Open) => Some("reopened"),
                None => None,
            },
        };
        let (status, _, text) = self
            .send(
                kind,
                self.client
                    ._patch(self.repo_path(&format!("/issues/{number}")), Some(&request)),
            )
            .await?;
        Self::check(status, &text)?;
        Ok(Self::parse::<GhIssue>(&text)?.into())
    }

    async fn get_issue(&self, number: i64) -> ProviderResult<Option<RemoteIssue>> {
        let kind = CallKind::Read;
        let (status, _, text) = self
            .send(
                kind,
                self.client
                    ._get(self.repo_path(&format!("/issues/{number}"))),
            )
            .await?;
        // 301: transferred to another repository; 404/410: deleted.
        if matches!(status, 301 | 404 | 410) {
            return Ok(None);
        }
        Self::check(status, &text)?;
        let issue: RemoteIssue = Self::parse::<GhIssue>(&text)?.into();
        Ok((!issue.is_pull_request).then_some(issue))
    }

    async fn list_issues(&self, query: &IssueQuery) -> ProviderResult<IssuePage> {
        let kind = CallKind::Read;
        let uri = match &query.page_url {
            Some(url) => url.clone(),
            None => {
                let mut uri = self.repo_path(&format!(
                    "/issues?state={}&sort={}&direction=asc&per_page={}",
                    if query.include_closed { "all" } else { "open" },
                    if query.by_created {
                        "created"
                    } else {
                        "updated"
                    },
                    query.per_page.clamp(1, 100)
                ));
                if let Some(since) = &query.since {
                    uri.push_str("&since=");
                    uri.push_str(
                        &url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>(),
                    );
                }
                uri
            }
        };
        let mut headers = HeaderMap::new();
        if let Some(etag) = query.etag.as_deref().and_then(|e| e.parse().ok()) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        let (status, answer_headers, text) = self
            .send(kind, self.client._get_with_headers(uri, Some(headers)))
            .await?;
        Self::check(status, &text)?;
        let etag = answer_headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == 304 {
            return Ok(IssuePage {
                etag: etag.or_else(|| query.etag.clone()),
                not_modified: true,
                ..IssuePage::default()
            });
        }
        let issues: Vec<GhIssue> = Self::parse(&text)?;
        Ok(IssuePage {
            issues: issues.into_iter().map(RemoteIssue::from).collect(),
            next: next_link(&answer_headers),
            etag,
            not_modified: false,
        })
    }

    async fn create_comment(&self, number: i64, body: &str) -> ProviderResult<RemoteComment> {
        let kind = CallKind::Create;
        let (status, _, text) = self
            .send(
                kind,
                self.client._post(
                    self.repo_path(&format!("/issues/{number}/comments")),
                    Some(&GhCreateComment { body }),
                ),
            )
            .await?;
        Self::check(status, &text)?;
        Ok(Self::parse::<GhComment>(&text)?.into())
    }

    async fn list_comments(&self, number: i64) -> ProviderResult<Vec<RemoteComment>> {
        let kind = CallKind::Read;
        let (status, _, text) = self
            .send(
                kind,
                self.client
                    ._get(self.repo_path(&format!("/issues/{number}/comments?per_page=100"))),
            )
            .await?;
        Self::check(status, &text)?;
        let comments: Vec<GhComment> = Self::parse(&text)?;
        Ok(comments.into_iter().map(RemoteComment::from).collect())
    }

    async fn update_comment(
        &self,
        _number: i64,
        comment_id: i64,
        body: &str,
    ) -> ProviderResult<RemoteComment> {
        let (status, _, text) = self
            .send(
                CallKind::Mutation,
                self.client._patch(
                    self.repo_path(&format!("/issues/comments/{comment_id}")),
                    Some(&GhCreateComment { body }),
                ),
            )
            .await?;
        Self::check(status, &text)?;
        Ok(Self::parse::<GhComment>(&text)?.into())
    }

    async fn poll_comments(&self, query: &IssueQuery) -> ProviderResult<Option<CommentPage>> {
        let uri = match &query.page_url {
            Some(url) => url.clone(),
            None => {
                let mut uri = self.repo_path(&format!(
                    "/issues/comments?sort=updated&direction=asc&per_page={}",
                    query.per_page.clamp(1, 100)
                ));
                if let Some(since) = &query.since {
                    uri.push_str("&since=");
                    uri.push_str(
                        &url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>(),
                    );
                }
                uri
            }
        };
        let mut headers = HeaderMap::new();
        if let Some(etag) = query.etag.as_deref().and_then(|e| e.parse().ok()) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        let (status, answer_headers, text) = self
            .send(
                CallKind::Read,
                self.client._get_with_headers(uri, Some(headers)),
            )
            .await?;
        Self::check(status, &text)?;
        let etag = answer_headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == 304 {
            return Ok(Some(CommentPage {
                etag: etag.or_else(|| query.etag.clone()),
                not_modified: true,
                ..CommentPage::default()
            }));
        }
        let comments: Vec<GhComment> = Self::parse(&text)?;
        Ok(Some(CommentPage {
            comments: comments.into_iter().map(RemoteComment::from).collect(),
            next: next_link(&answer_headers),
            etag,
            not_modified: false,
        }))
    }
}
