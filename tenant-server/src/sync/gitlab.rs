//! GitLab (gitlab.com and self-managed) through its REST API v4 with
//! reqwest: issues, notes, labels and `state_event`. One request per
//! call, no retries of its own; rate-limit answers (429, `Retry-After`,
//! `RateLimit-*`) go to the limiter. Connections resolve through the
//! sync guard (`net`), which refuses private addresses on every connect.

use super::limiter::{CallKind, Limiter};
use super::net::{Guard, transport_error};
use super::provider::{
    CommentPage, IssueChange, IssuePage, IssueQuery, IssueState, Provider, ProviderError,
    ProviderResult, RemoteComment, RemoteIssue, sorted_labels,
};
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";

/// `GET /projects/:id` (the fields we read).
#[derive(Debug, Deserialize)]
pub struct GlProject {
    pub path_with_namespace: String,
    #[serde(default)]
    pub issues_enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct GlUser {
    pub username: String,
}

/// An issue as GitLab sends it over REST.
#[derive(Debug, Deserialize)]
pub struct GlIssue {
    pub iid: i64,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `opened` or `closed`.
    pub state: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub web_url: String,
    #[serde(default)]
    pub author: Option<GlUser>,
    pub updated_at: String,
    /// Set when the issue was moved to another project.
    #[serde(default)]
    pub moved_to_id: Option<i64>,
}

impl From<GlIssue> for RemoteIssue {
    fn from(i: GlIssue) -> Self {
        Self {
            number: i.iid,
            title: i.title,
            body: i.description.unwrap_or_default(),
            labels: sorted_labels(i.labels),
            state: if i.state == "closed" {
                IssueState::Closed
            } else {
                IssueState::Open
            },
            url: i.web_url,
            author: i.author.map(|a| a.username).unwrap_or_default(),
            updated_at: i.updated_at,
            is_pull_request: false,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct GlNote {
    pub id: i64,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub author: Option<GlUser>,
    /// System notes ("changed the description") are not comments.
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub noteable_iid: Option<i64>,
}

impl From<GlNote> for RemoteComment {
    fn from(n: GlNote) -> Self {
        Self {
            id: n.id,
            body: n.body,
            author: n.author.map(|a| a.username).unwrap_or_default(),
            updated_at: n.updated_at.unwrap_or_default(),
            number: n.noteable_iid,
        }
    }
}

/// `POST /projects/:id/issues` and `PUT /projects/:id/issues/:iid`.
#[derive(Debug, Serialize, Default)]
pub struct GlIssueWrite<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Comma-separated; an empty string removes every label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// `close` or `reopen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_event: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct GlCreateNote<'a> {
    pub body: &'a str,
}

#[derive(Debug, Deserialize)]
struct GlError {
    #[serde(default)]
    message: serde_json::Value,
}

pub struct GitLab {
    http: reqwest::Client,
    api_url: String,
    project: String,
    token: SecretString,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab")
            .field("project", &self.project)
            .finish()
    }
}

impl GitLab {
    pub fn new(
        api_url: &str,
        project: &str,
        token: &SecretString,
        limiter: Arc<Limiter>,
        guard: Guard,
    ) -> ProviderResult<Self> {
        let url = url::Url::parse(api_url)
            .map_err(|e| ProviderError::Protocol(format!("api_url: {e}")))?;
        guard
            .check_literal(&url)
            .map_err(|e| ProviderError::PrivateAddress(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("TaskHarbor-Sync/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(guard))
            .build()
            .map_err(|e| ProviderError::Protocol(format!("client: {e}")))?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            project: project.to_owned(),
            token: token.clone(),
            limiter,
        })
    }

    fn url(&self, rest: &str) -> String {
        let id: String = url::form_urlencoded::byte_serialize(self.project.as_bytes()).collect();
        format!("{}/projects/{id}{rest}", self.api_url)
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .header("PRIVATE-TOKEN", self.token.expose_secret())
    }

    async fn send(
        &self,
        kind: CallKind,
        request: RequestBuilder,
    ) -> ProviderResult<(u16, reqwest::header::HeaderMap, String)> {
        self.limiter.ready(kind).await;
        let response = request.send().await;
        if kind != CallKind::Read {
            self.limiter.mutation_done();
        }
        let response = response.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| ProviderError::Unknown(format!("reading the answer: {e}")))?;
        if let Some(wait) = self.limiter.observe(status, &headers, &body) {
            return Err(ProviderError::RateLimited(wait));
        }
        match status {
            200..=299 | 304 => Ok((status, headers, body)),
            401 | 403 => Err(ProviderError::Unauthorized),
            404 | 410 => Err(ProviderError::NotFound),
            408 | 500..=599 => Err(ProviderError::Unknown(format!("HTTP {status}"))),
            _ => Err(ProviderError::Rejected {
                status,
                message: serde_json::from_str::<GlError>(&body)
                    .map(|e| e.message.to_string())
                    .unwrap_or_default(),
            }),
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> ProviderResult<T> {
        serde_json::from_str(body).map_err(|e| ProviderError::Protocol(e.to_string()))
    }
}

impl Provider for GitLab {
    async fn verify(&self) -> ProviderResult<()> {
        let (_, _, body) = self
            .send(CallKind::Read, self.request(Method::GET, &self.url("")))
            .await?;
        let project: GlProject = Self::parse(&body)?;
        if project.issues_enabled == Some(false) {
            return Err(ProviderError::Rejected {
                status: 200,
                message: format!("{} has issues turned off", project.path_with_namespace),
            });
        }
        Ok(())
    }

    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> ProviderResult<RemoteIssue> {
        let write = GlIssueWrite {
            title: Some(title),
            description: Some(body),
            labels: Some(labels.join(",")),
            state_event: None,
        };
        let (_, _, text) = self
            .send(
                CallKind::Create,
                self.request(Method::POST, &self.url("/issues"))
                    .json(&write),
            )
            .await?;
        Ok(Self::parse::<GlIssue>(&text)?.into())
    }

    async fn update_issue(&self, number: i64, change: &IssueChange) -> ProviderResult<RemoteIssue> {
        let write = GlIssueWrite {
            title: change.title.as_deref(),
            description: change.body.as_deref(),
            labels: change.labels.as_ref().map(|l| l.join(",")),
            state_event: change.state.map(|s| match s {
                IssueState::Open => "reopen",
                IssueState::Closed => "close",
            }),
        };
        let (_, _, text) = self
            .send(
                CallKind::Mutation,
                self.request(Method::PUT, &self.url(&format!("/issues/{number}")))
                    .json(&write),
            )
            .await?;
        Ok(Self::parse::<GlIssue>(&text)?.into())
    }

    async fn get_issue(&self, number: i64) -> ProviderResult<Option<RemoteIssue>> {
        let result = self
            .send(
                CallKind::Read,
                self.request(Method::GET, &self.url(&format!("/issues/{number}"))),
            )
            .await;
        match result {
            Ok((_, _, text)) => {
                let issue: GlIssue = Self::parse(&text)?;
                Ok(issue.moved_to_id.is_none().then(|| issue.into()))
            }
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_issues(&self, query: &IssueQuery) -> ProviderResult<IssuePage> {
        let url = match &query.page_url {
            Some(url) if url.starts_with(&self.api_url) => url.clone(),
            Some(_) => {
                return Err(ProviderError::Protocol(
                    "a next page on another host".into(),
                ));
            }
            None => {
                let mut url = self.url(&format!(
                    "/issues?order_by={}&sort=asc&per_page={}",
                    if query.by_created {
                        "created_at"
                    } else {
                        "updated_at"
                    },
                    query.per_page.clamp(1, 100)
                ));
                if !query.include_closed {
                    url.push_str("&state=opened");
                }
                if let Some(since) = &query.since {
                    url.push_str("&updated_after=");
                    url.push_str(
                        &url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>(),
                    );
                }
                url
            }
        };
        let mut request = self.request(Method::GET, &url);
        if let Some(etag) = &query.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let (status, headers, text) = self.send(CallKind::Read, request).await?;
        let etag = headers
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
        let issues: Vec<GlIssue> = Self::parse(&text)?;
        Ok(IssuePage {
            issues: issues.into_iter().map(RemoteIssue::from).collect(),
            next: super::github::next_link(&headers),
            etag,
            not_modified: false,
        })
    }

    async fn create_comment(&self, number: i64, body: &str) -> ProviderResult<RemoteComment> {
        let (_, _, text) = self
            .send(
                CallKind::Create,
                self.request(Method::POST, &self.url(&format!("/issues/{number}/notes")))
                    .json(&GlCreateNote { body }),
            )
            .await?;
        Ok(Self::parse::<GlNote>(&text)?.into())
    }

    async fn list_comments(&self, number: i64) -> ProviderResult<Vec<RemoteComment>> {
        let (_, _, text) = self
            .send(
                CallKind::Read,
                self.request(
                    Method::GET,
                    &self.url(&format!("/issues/{number}/notes?sort=asc&per_page=100")),
                ),
            )
            .await?;
        let notes: Vec<GlNote> = Self::parse(&text)?;
        Ok(notes
            .into_iter()
            .filter(|n| !n.system)
            .map(RemoteComment::from)
            .collect())
    }

    async fn update_comment(
        &self,
        number: i64,
        comment_id: i64,
        body: &str,
    ) -> ProviderResult<RemoteComment> {
        let (_, _, text) = self
            .send(
                CallKind::Mutation,
                self.request(
                    Method::PUT,
                    &self.url(&format!("/issues/{number}/notes/{comment_id}")),
                )
                .json(&GlCreateNote { body }),
            )
            .await?;
        Ok(Self::parse::<GlNote>(&text)?.into())
    }

    /// GitLab has no repository-wide notes listing: the reconciler reads
    /// the notes of each issue its issue poll saw updated.
    async fn poll_comments(&self, _query: &IssueQuery) -> ProviderResult<Option<CommentPage>> {
        Ok(None)
    }
}
