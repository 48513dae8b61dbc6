//! TaskHarbor control plane: the public waitlist, the platform-admin API that
//! turns a signup into a `TaskHarbor` resource (created through kube-rs with
//! the operator's own types), the one-time reveal of the tenant's bootstrap
//! token, and fleet metrics. See `docs/control-plane.md`.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod fleet;
pub mod metrics;
pub mod ratelimit;
pub mod store;
pub mod web;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqlitePool;
use tokio::net::TcpListener;

use crate::{config::Config, fleet::Cluster, metrics::Metrics, ratelimit::RateLimiter};

/// Largest request body accepted (waitlist and admin requests are tiny).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Settings the handlers need, derived from [`Config`] without its secrets.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tenants_namespace: String,
    pub tenant_version: String,
    pub trust_proxy: bool,
    pub reveal_ttl: Duration,
    pub public_url: String,
    pub secure_cookies: bool,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            tenants_namespace: config.tenants_namespace.clone(),
            tenant_version: config.tenant_version.clone(),
            trust_proxy: config.trust_proxy,
            reveal_ttl: config.reveal_ttl(),
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            secure_cookies: config.secure_cookies,
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub settings: Arc<Settings>,
    /// SHA-256 of the admin token; the token itself is dropped after startup.
    pub admin_token_sha256: Arc<[u8; 32]>,
    /// `None` with `--kube=off`.
    pub cluster: Option<Cluster>,
    pub templates: Arc<tera::Tera>,
    pub metrics: Metrics,
    pub limiter: RateLimiter,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("loading templates: {0}")]
    Templates(#[from] tera::Error),
    #[error("creating metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("the admin token must be at least 16 characters")]
    WeakAdminToken,
}

/// Hashes the admin token for constant-time comparison later.
pub fn hash_admin_token(token: &SecretString) -> Result<[u8; 32], StartupError> {
    use sha2::{Digest, Sha256};
    let token = token.expose_secret();
    if token.len() < 16 {
        return Err(StartupError::WeakAdminToken);
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}

/// The templates are compiled into the binary (the container's root file
/// system is read-only and carries nothing else). Names end in `.html`, so
/// tera escapes every variable.
pub fn templates() -> Result<tera::Tera, tera::Error> {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates(vec![
        (
            "base.html",
            include_str!("../../templates/control-plane/base.html"),
        ),
        (
            "index.html",
            include_str!("../../templates/control-plane/index.html"),
        ),
        (
            "thanks.html",
            include_str!("../../templates/control-plane/thanks.html"),
        ),
        (
            "reveal.html",
            include_str!("../../templates/control-plane/reveal.html"),
        ),
        (
            "admin.html",
            include_str!("../../templates/control-plane/admin.html"),
        ),
    ])?;
    Ok(tera)
}

impl AppState {
    /// Builds the state over an opened database. `cluster` is `None` with `--kube=off`.
    pub fn new(
        config: &Config,
        pool: SqlitePool,
        cluster: Option<Cluster>,
    ) -> Result<Self, StartupError> {
        let limiter =
            RateLimiter::new(pool.clone(), config.signup_rate_limit, config.rate_window());
        Ok(Self {
            pool,
            settings: Arc::new(Settings::from_config(config)),
            admin_token_sha256: Arc::new(hash_admin_token(&config.admin_token)?),
            cluster,
            templates: Arc::new(templates()?),
            metrics: Metrics::new()?,
            limiter,
        })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::landing))
        .route("/admin", get(web::admin_page))
        .route("/reveal/{token}", get(web::reveal_page).post(web::reveal))
        .route("/api/waitlist", post(api::waitlist))
        .route("/api/admin/signups", get(api::list_signups))
        .route("/api/admin/signups/{id}", get(api::get_signup))
        .route("/api/admin/signups/{id}/approve", post(api::approve))
        .route("/api/admin/signups/{id}/reject", post(api::reject))
        .route("/api/admin/tenants", get(api::list_tenants))
        .route(
            "/api/admin/tenants/{tenant}",
            get(api::get_tenant).delete(api::delete_tenant),
        )
        .route("/api/admin/tenants/{tenant}/suspend", post(api::suspend))
        .route("/api/admin/tenants/{tenant}/resume", post(api::resume))
        .route(
            "/api/admin/tenants/{tenant}/reveal-link",
            post(api::reissue_reveal_link),
        )
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .fallback(api::not_found)
        // Spans name the route template, never the raw path: a reveal URL
        // carries a secret.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", |p| p.as_str())
                        .to_owned();
                    tracing::info_span!("request", method = %request.method(), route)
                },
            ),
        )
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves. The peer
/// address is made available to handlers (rate limiting).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
