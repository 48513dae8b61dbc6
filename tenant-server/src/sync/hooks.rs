//! Inbound webhooks: `POST /hooks/github/{board_id}` (HMAC-SHA256 of the
//! raw body in `X-Hub-Signature-256`) and `POST /hooks/gitlab/{board_id}`
//! (`X-Gitlab-Token`). A delivery is verified (constant time, the current
//! secret or, for 24 hours after a rotation, the previous one), stored in
//! the durable inbox under its delivery id (a redelivery is a no-op) and
//! answered at once; the link's worker applies it after the 2xx.

use super::ProviderKind;
use super::db;
use super::github::GhComment;
use crate::AppState;
use crate::api::error::ApiError;
use crate::store::now_ms;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The inbound routes; none at all with `--sync off` (so `/hooks/*` is 404).
pub fn routes(state: &AppState) -> Router {
    if !super::enabled(state) {
        return Router::new();
    }
    Router::new()
        .route("/hooks/github/{board_id}", post(github))
        .route("/hooks/gitlab/{board_id}", post(gitlab))
        .with_state(state.clone())
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The secrets a delivery may be signed with now.
async fn secrets(state: &AppState, board_id: i64) -> Result<Vec<SecretString>, ApiError> {
    let link = db::link(&state.store.reader, board_id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| ApiError::NotFound("sync link".into()))?;
    let mut out = Vec::new();
    if let Ok(s) = state.sync.open_secret(board_id, &link.secret_sealed) {
        out.push(s);
    }
    if let (Some(prev), Some(until)) = (&link.previous_secret_sealed, link.previous_until)
        && until > now_ms()
        && let Ok(s) = state.sync.open_secret(board_id, prev)
    {
        out.push(s);
    }
    Ok(out)
}

async fn accept(
    state: &AppState,
    board_id: i64,
    delivery: Option<&str>,
    event: &str,
    body: &Bytes,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    // Without a delivery id, the body's hash identifies a redelivery.
    let delivery = delivery.map_or_else(|| hex::encode(Sha256::digest(body)), str::to_owned);
    let payload = String::from_utf8_lossy(body);
    let fresh = db::inbox_insert(
        &state.store.writer,
        board_id,
        &delivery,
        event,
        &payload,
        now_ms(),
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    state
        .sync
        .metrics
        .inbound
        .with_label_values(&[if fresh { "accepted" } else { "duplicate" }])
        .inc();
    if fresh {
        state.sync.wake();
    }
    Ok((
        if fresh {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        axum::Json(serde_json::json!({"status": if fresh { "accepted" } else { "duplicate" }})),
    ))
}

fn refused(state: &AppState) -> ApiError {
    state
        .sync
        .metrics
        .inbound
        .with_label_values(&["unauthorized"])
        .inc();
    ApiError::Unauthorized
}

async fn github(
    State(state): State<AppState>,
    Path(board_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    let secrets = secrets(&state, board_id).await?;
    let signature = header(&headers, "x-hub-signature-256").unwrap_or_default();
    if !secrets
        .iter()
        .any(|s| github_signature_valid(s.expose_secret().as_bytes(), &body, signature))
    {
        return Err(refused(&state));
    }
    let delivery =
        header(&headers, "x-github-delivery").or_else(|| header(&headers, "idempotency-key"));
    let event = header(&headers, "x-github-event").unwrap_or("unknown");
    accept(&state, board_id, delivery, event, &body).await
}

async fn gitlab(
    State(state): State<AppState>,
    Path(board_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    let secrets = secrets(&state, board_id).await?;
    let token = header(&headers, "x-gitlab-token").unwrap_or_default();
    if !secrets
        .iter()
        .any(|s| bool::from(s.expose_secret().as_bytes().ct_eq(token.as_bytes())))
    {
        return Err(refused(&state));
    }
    let delivery =
        header(&headers, "x-gitlab-event-uuid").or_else(|| header(&headers, "idempotency-key"));
    let event = header(&headers, "x-gitlab-event").unwrap_or("unknown");
    accept(&state, board_id, delivery, event, &body).await
}

/// What a stored delivery asks the worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Issue `number` changed somehow: read it and merge.
    Issue {
        number: i64,
        sender: String,
    },
    /// The issue was deleted or transferred away.
    IssueGone {
        number: i64,
    },
    /// A comment was created or edited (`Upsert`: the worker compares it
    /// with what it knows), or deleted.
    Comment {
        number: i64,
        remote_id: i64,
        body: String,
        author: String,
        updated_at: String,
        action: CommentAction,
    },
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentAction {
    Upsert,
    Deleted,
}

/// The issue in a webhook body: only which one it is (its state is read
/// from the API, since deliveries can arrive late or out of order).
#[derive(Debug, Deserialize)]
pub struct GhIssueRef {
    pub number: i64,
    #[serde(default)]
    pub pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub struct GhSender {
    pub login: String,
}

/// GitHub `issues` event (the fields we read).
#[derive(Debug, Deserialize)]
pub struct GhIssuesEvent {
    pub action: String,
    pub issue: GhIssueRef,
    #[serde(default)]
    pub sender: Option<GhSender>,
}

/// GitHub `issue_comment` event.
#[derive(Debug, Deserialize)]
pub struct GhIssueCommentEvent {
    pub action: String,
    pub issue: GhIssueRef,
    pub comment: GhComment,
}

#[derive(Debug, Deserialize)]
pub struct GlUserRef {
    pub username: String,
}

#[derive(Debug, Deserialize)]
pub struct GlIssueAttributes {
    pub iid: i64,
    #[serde(default)]
    pub action: Option<String>,
}

/// GitLab `Issue Hook`.
#[derive(Debug, Deserialize)]
pub struct GlIssueEvent {
    pub object_attributes: GlIssueAttributes,
    #[serde(default)]
    pub user: Option<GlUserRef>,
}

#[derive(Debug, Deserialize)]
pub struct GlNoteAttributes {
    pub id: i64,
    pub note: String,
    pub noteable_type: String,
    #[serde(default)]
    pub system: Option<bool>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GlNoteIssue {
    pub iid: i64,
}

/// GitLab `Note Hook`.
#[derive(Debug, Deserialize)]
pub struct GlNoteEvent {
    pub object_attributes: GlNoteAttributes,
    #[serde(default)]
    pub issue: Option<GlNoteIssue>,
    #[serde(default)]
    pub user: Option<GlUserRef>,
}

/// Reads a stored delivery into what it asks for.
pub fn parse_delivery(
    kind: ProviderKind,
    event: &str,
    payload: &str,
) -> Result<Delivery, serde_json::Error> {
    match (kind, event) {
        (ProviderKind::Github, "issues") => {
            let e: GhIssuesEvent = serde_json::from_str(payload)?;
            if e.issue.pull_request.is_some() {
                return Ok(Delivery::Ignored);
            }
            Ok(match e.action.as_str() {
                "deleted" | "transferred" => Delivery::IssueGone {
                    number: e.issue.number,
                },
                _ => Delivery::Issue {
                    number: e.issue.number,
                    sender: e.sender.map(|s| s.login).unwrap_or_default(),
                },
            })
        }
        (ProviderKind::Github, "issue_comment") => {
            let e: GhIssueCommentEvent = serde_json::from_str(payload)?;
            let action = match e.action.as_str() {
                "created" | "edited" => CommentAction::Upsert,
                "deleted" => CommentAction::Deleted,
                _ => return Ok(Delivery::Ignored),
            };
            if e.issue.pull_request.is_some() {
                return Ok(Delivery::Ignored);
            }
            Ok(Delivery::Comment {
                number: e.issue.number,
                remote_id: e.comment.id,
                body: e.comment.body.unwrap_or_default(),
                author: e.comment.user.map(|u| u.login).unwrap_or_default(),
                updated_at: e.comment.updated_at.unwrap_or_default(),
                action,
            })
        }
        (ProviderKind::Gitlab, "Issue Hook" | "Confidential Issue Hook") => {
            let e: GlIssueEvent = serde_json::from_str(payload)?;
            Ok(match e.object_attributes.action.as_deref() {
                Some("delete") => Delivery::IssueGone {
                    number: e.object_attributes.iid,
                },
                _ => Delivery::Issue {
                    number: e.object_attributes.iid,
                    sender: e.user.map(|u| u.username).unwrap_or_default(),
                },
            })
        }
        (ProviderKind::Gitlab, "Note Hook" | "Confidential Note Hook") => {
            let e: GlNoteEvent = serde_json::from_str(payload)?;
            match (e.object_attributes.noteable_type.as_str(), e.issue) {
                ("Issue", Some(issue)) if e.object_attributes.system != Some(true) => {
                    // A note event is sent on create and on update (GitLab
                    // sends none on delete): the worker tells them apart.
                    Ok(Delivery::Comment {
                        number: issue.iid,
                        remote_id: e.object_attributes.id,
                        body: e.object_attributes.note,
                        author: e.user.map(|u| u.username).unwrap_or_default(),
                        updated_at: e.object_attributes.updated_at.unwrap_or_default(),
                        action: CommentAction::Upsert,
                    })
                }
                _ => Ok(Delivery::Ignored),
            }
        }
        _ => Ok(Delivery::Ignored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_over_the_exact_bytes_verifies() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap_or_else(|_| unreachable!());
        mac.update(b"{\"a\":1}");
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(github_signature_valid(b"s3cret", b"{\"a\":1}", &sig));
        assert!(!github_signature_valid(b"other", b"{\"a\":1}", &sig));
        assert!(!github_signature_valid(b"s3cret", b"{\"a\": 1}", &sig));
        assert!(!github_signature_valid(b"s3cret", b"{\"a\":1}", ""));
        assert!(!github_signature_valid(
            b"s3cret",
            b"{\"a\":1}",
            &sig.replace("sha256=", "sha1=")
        ));
    }
}
