//! JSON API: the waitlist endpoint (which also answers the HTML form, see
//! [`crate::web`]), the platform-admin API behind the admin token, metrics
//! and health.

use axum::{
    Json,
    body::Body,
    extract::{FromRequestParts, Path, RawQuery, Request, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    AppState, BODY_LIMIT,
    domain::{self, NewSignup, SignupInput},
    error::ApiError,
    fleet::{self, ClusterError},
    ratelimit::client_ip,
    store::{self, DecideError},
    web,
};

/// The same answer for a new address, a known one and a bot, so the
/// endpoint never tells whether an email is already on the list.
pub const ACCEPTED_MESSAGE: &str =
    "Thanks! You are on the waitlist; we will write to you when your instance is ready.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Other,
}

pub fn body_kind(headers: &HeaderMap) -> BodyKind {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match ct.as_str() {
        "application/json" => BodyKind::Json,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        _ => BodyKind::Other,
    }
}

pub fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// For errors rendered as HTML (which bypass `ApiError::into_response`).
pub fn log_if_server_error(error: &ApiError) {
    crate::error::log_failure(error);
}

pub async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

/// Why a submission was not accepted, with what the form should show again.
pub struct Rejected {
    pub error: ApiError,
    pub input: SignupInput,
}

/// The waitlist rules shared by the JSON and HTML paths: rate limit, CSRF
/// (form only), honeypot, validation, dedupe.
async fn submit(state: &AppState, parts: &Parts, body: Body) -> Result<(), Rejected> {
    let reject = |error, input| Rejected { error, input };
    let kind = body_kind(&parts.headers);
    if let Some(ip) = client_ip(parts, state.settings.trust_proxy)
        && let Err(retry_after_secs) = state.limiter.check(ip).await
    {
        state.metrics.error("rate_limited");
        return Err(reject(
            ApiError::RateLimited { retry_after_secs },
            SignupInput::default(),
        ));
    }
    let bytes = read_body(body)
        .await
        .map_err(|e| reject(e, SignupInput::default()))?;
    let input: SignupInput = match kind {
        BodyKind::Json => serde_json::from_slice(&bytes).map_err(|e| {
            reject(
                ApiError::InvalidRequest(format!("malformed JSON body: {e}")),
                SignupInput::default(),
            )
        })?,
        BodyKind::Form => serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            reject(
                ApiError::InvalidRequest(format!("malformed form body: {e}")),
                SignupInput::default(),
            )
        })?,
        BodyKind::Other => {
            return Err(reject(
                ApiError::UnsupportedMediaType(
                    "send application/json or application/x-www-form-urlencoded".into(),
                ),
                SignupInput::default(),
            ));
        }
    };
    if kind == BodyKind::Form && !web::csrf_ok(&parts.headers, input.csrf_token.as_deref()) {
        state.metrics.error("csrf");
        return Err(reject(
            ApiError::Forbidden(
                "the form expired or was not sent from our page; please submit it again".into(),
            ),
            input,
        ));
    }
    if input.is_bot() {
        state.metrics.signups.with_label_values(&["honeypot"]).inc();
        return Ok(());
    }
    let signup = match NewSignup::parse(&input) {
        Ok(s) => s,
        Err(fields) => return Err(reject(ApiError::Validation(fields), input)),
    };
    match store::insert_signup(&state.pool, &signup).await {
        Ok(true) => {
            state.metrics.signups.with_label_values(&["created"]).inc();
            Ok(())
        }
        Ok(false) => {
            state
                .metrics
                .signups
                .with_label_values(&["duplicate"])
                .inc();
            Ok(())
        }
        Err(e) => {
            state.metrics.error("database");
            Err(reject(e.into(), input))
        }
    }
}

/// `POST /api/waitlist`: JSON in, JSON out; a form post (the landing page,
/// which works without JavaScript) gets HTML unless it asks for JSON.
pub async fn waitlist(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let html = body_kind(&parts.headers) == BodyKind::Form && !accepts_json(&parts.headers);
    let result = submit(&state, &parts, body).await;
    match (result, html) {
        (Ok(()), false) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "accepted", "message": ACCEPTED_MESSAGE})),
        )
            .into_response(),
        (Ok(()), true) => web::thanks(&state),
        (Err(rejected), false) => rejected.error.into_response(),
        (Err(rejected), true) => web::form_rejected(&state, &parts.headers, rejected),
    }
}

/// Proof that the request carried the platform-admin token
/// (`Authorization: Bearer` or `X-API-Key`), compared in constant time.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .ok_or(ApiError::Unauthorized)?;
        let hash: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        if bool::from(hash.ct_eq(&*state.admin_token_sha256)) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
}

fn signup_json(row: &store::SignupRow) -> Value {
    let status = match (row.status.as_str(), row.tenant_state.as_deref()) {
        ("approved", Some("manual")) => "approved (manual)",
        (s, _) => s,
    };
    json!({
        "id": row.id,
        "email": row.email,
        "company": row.company,
        "note": row.note,
        "status": status,
        "created_at": rfc3339(row.created_at),
        "decided_at": row.decided_at.map(rfc3339),
        "tenant": row.tenant,
        "tenant_state": row.tenant_state,
        "phase": row.phase,
    })
}

pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `GET /api/admin/signups?status=&q=&limit=`
pub async fn list_signups(
    _: Admin,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query: ListQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::InvalidRequest(format!("bad query: {e}")))?;
    let status = query.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !["pending", "approved", "rejected"].contains(&s.as_str())
    {
        return Err(ApiError::InvalidRequest(
            "status must be pending, approved or rejected".into(),
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let rows = store::list_signups(&state.pool, status.as_deref(), search, limit).await?;
    Ok(Json(
        json!({"signups": rows.iter().map(signup_json).collect::<Vec<_>>()}),
    ))
}

fn signup_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("no such signup".into()))
}

pub async fn get_signup(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = store::get_signup(&state.pool, signup_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such signup".into()))?;
    Ok(Json(signup_json(&row)))
}

#[derive(Debug, Deserialize)]
struct ApproveBody {
    tenant: String,
}

fn decide_error(e: DecideError) -> ApiError {
    match e {
        DecideError::NotFound => ApiError::NotFound("no such signup".into()),
        e @ (DecideError::AlreadyDecided(_) | DecideError::TenantTaken(_)) => {
            ApiError::Conflict(e.to_string())
        }
        DecideError::Store(e) => e.into(),
    }
}

fn cluster_error(state: &AppState, e: ClusterError) -> ApiError {
    match e {
        e @ ClusterError::AlreadyExists(_) => ApiError::Conflict(e.to_string()),
        e @ ClusterError::NotFound(_) => ApiError::NotFound(e.to_string()),
        e @ ClusterError::NoToken => ApiError::Unavailable(e.to_string()),
        ClusterError::Kube(e) => {
            state.metrics.error("kube");
            ApiError::Kube(e)
        }
    }
}

/// Creates a reveal link for `tenant` and stores only its hash.
async fn issue_reveal(state: &AppState, tenant: &str) -> Result<Value, ApiError> {
    let token = domain::random_token();
    let expires_at = store::insert_reveal(
        &state.pool,
        &domain::sha256_hex(&token),
        tenant,
        state.settings.reveal_ttl,
    )
    .await?;
    Ok(json!({
        "url": format!("{}/reveal/{token}", state.settings.public_url),
        "expires_at": rfc3339(expires_at),
    }))
}

/// `POST /api/admin/signups/{id}/approve` `{"tenant"}`: records the approval,
/// then creates the `TaskHarbor` resource (or, with `--kube=off`, renders its
/// YAML). The answer carries the one-time reveal link; it is shown only here.
pub async fn approve(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = signup_id(&id)?;
    let bytes = read_body(request.into_body()).await?;
    let body: ApproveBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON body: {e}")))?;
    let tenant = body.tenant.trim().to_owned();
    let spec = domain::tenant_spec(&tenant, &state.settings.tenant_version)
        .map_err(|e| ApiError::Validation([("tenant", e.to_string())].into_iter().collect()))?;
    let resource = fleet::resource(&tenant, spec, &state.settings.tenants_namespace, id);
    let Some(cluster) = &state.cluster else {
        let yaml = fleet::resource_yaml(&resource)
            .map_err(|e| ApiError::Internal(format!("rendering YAML: {e}")))?;
        store::approve(&state.pool, id, &tenant, "manual")
            .await
            .map_err(decide_error)?;
        state.metrics.approvals.with_label_values(&["manual"]).inc();
        return Ok((
            StatusCode::OK,
            Json(json!({
                "signup_id": id,
                "tenant": tenant,
                "status": "approved (manual)",
                "message": "no cluster connected (--kube=off): apply this manifest by hand",
                "yaml": yaml,
            })),
        )
            .into_response());
    };
    store::approve(&state.pool, id, &tenant, "provisioning")
        .await
        .map_err(decide_error)?;
    if let Err(e) = cluster.create(&resource).await {
        if let Err(undo) = store::undo_approval(&state.pool, id, &tenant).await {
            tracing::error!(error = %undo, "could not undo an approval after the create failed");
        }
        return Err(cluster_error(&state, e));
    }
    // If the process dies before this line, the follower's repair finds the
    // approval without a recorded resource and completes it.
    store::mark_resource_created(&state.pool, &tenant).await?;
    state.metrics.approvals.with_label_values(&["kube"]).inc();
    let reveal = issue_reveal(&state, &tenant).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "signup_id": id,
            "tenant": tenant,
            "status": "approved",
            "tenant_state": "provisioning",
            "reveal": reveal,
        })),
    )
        .into_response())
}

pub async fn reject(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = signup_id(&id)?;
    store::reject(&state.pool, id).await.map_err(decide_error)?;
    Ok(Json(json!({"signup_id": id, "status": "rejected"})))
}

fn tenant_json(t: &store::TenantRow) -> Value {
    json!({
        "tenant": t.tenant,
        "signup_id": t.signup_id,
        "state": if t.state == "manual" { "approved (manual)" } else { t.state.as_str() },
        "phase": t.phase,
        "approved_at": rfc3339(t.approved_at),
        "ready_at": t.ready_at.map(rfc3339),
        "provisioning_seconds": t.provisioning_ms.map(|ms| ms as f64 / 1000.0),
        "revealed": t.revealed_at.is_some(),
    })
}

pub async fn list_tenants(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let rows = store::list_tenants(&state.pool).await?;
    Ok(Json(
        json!({"tenants": rows.iter().map(tenant_json).collect::<Vec<_>>()}),
    ))
}

async fn known_tenant(state: &AppState, tenant: &str) -> Result<store::TenantRow, ApiError> {
    store::get_tenant(&state.pool, tenant)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".into()))
}

pub async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = known_tenant(&state, &tenant).await?;
    let events = store::tenant_events(&state.pool, &tenant).await?;
    let mut value = tenant_json(&row);
    value["events"] = json!(
        events
            .iter()
            .map(|e| json!({"event": e.event, "at": rfc3339(e.at)}))
            .collect::<Vec<_>>()
    );
    Ok(Json(value))
}

fn require_cluster(state: &AppState) -> Result<&fleet::Cluster, ApiError> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::Conflict("no cluster connected (--kube=off): change the resource by hand".into())
    })
}

async fn set_suspend(
    state: AppState,
    tenant: String,
    suspend: bool,
) -> Result<Json<Value>, ApiError> {
    let row = known_tenant(&state, &tenant).await?;
    if row.state == "deleted" {
        return Err(ApiError::Conflict("the tenant was deleted".into()));
    }
    let cluster = require_cluster(&state)?;
    cluster
        .set_suspend(&tenant, suspend)
        .await
        .map_err(|e| cluster_error(&state, e))?;
    let new_state = match (suspend, row.ready_at) {
        (true, _) => "suspended",
        (false, Some(_)) => "ready",
        (false, None) => "provisioning",
    };
    store::set_state(&state.pool, &tenant, new_state).await?;
    Ok(Json(json!({"tenant": tenant, "state": new_state})))
}

/// `POST /api/admin/tenants/{tenant}/suspend`: `spec.suspend = true` (scale to zero, keep the volume).
pub async fn suspend(
    _: Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_suspend(state, tenant, true).await
}

pub async fn resume(
    _: Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_suspend(state, tenant, false).await
}

/// `DELETE /api/admin/tenants/{tenant}`: deletes the resource (the operator
/// keeps the volume when `retainOnDelete`).
pub async fn delete_tenant(
    _: Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_tenant(&state, &tenant).await?;
    let cluster = require_cluster(&state)?;
    cluster
        .delete(&tenant)
        .await
        .map_err(|e| cluster_error(&state, e))?;
    store::set_state(&state.pool, &tenant, "deleted").await?;
    Ok(Json(json!({"tenant": tenant, "state": "deleted"})))
}

/// A fresh reveal link, for when the first was lost or expired before use.
/// Refused once the token was revealed.
pub async fn reissue_reveal_link(
    _: Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let row = known_tenant(&state, &tenant).await?;
    require_cluster(&state)?;
    if row.revealed_at.is_some() {
        return Err(ApiError::Gone(
            "the bootstrap token was already revealed; create a new admin token in the tenant instead".into(),
        ));
    }
    if row.state == "deleted" {
        return Err(ApiError::Conflict("the tenant was deleted".into()));
    }
    let reveal = issue_reveal(&state, &tenant).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant": tenant, "reveal": reveal})),
    )
        .into_response())
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = store::fleet_counts(&state.pool).await.inspect_err(|_| {
        state.metrics.error("database");
    })?;
    state.metrics.set_counts(&counts);
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers (the cluster is not required: signups
/// must keep working while the API server is away).
pub async fn readyz(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => "ok".into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}
