//! TaskHarbor's tenant server: a concurrency-safe work queue for humans
//! and AI agents, served over HTTP+JSON on an embedded SQLite database.
//!
//! `domain` holds the rules, `store` the transactions, `api` the HTTP
//! surface, `delivery` the background workers. See docs/queue-core.md.

pub mod api;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod edge;
pub mod mcp;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod web;

#[cfg(test)]
mod layering;

use api::extract::BodyLimit;
use api::middleware::{KeyLocks, RateLimiter};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware::{from_fn, from_fn_with_state};
use config::Config;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio_util_shim::CancellationToken;
use tower_http::trace::TraceLayer;

/// Shared by every handler: one `Arc`, so the several clones a request
/// makes (each layer's `State`) are one atomic increment each, not one per
/// field (cloning the fields was ~3 % of the server's CPU under load in
/// `perf`). Fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub delivery_metrics: Arc<delivery::webhooks::DeliveryMetrics>,
    pub rate_limiter: Arc<RateLimiter>,
    pub key_locks: Arc<KeyLocks>,
    /// Ticks after every committed change (wakes long-polls and streams).
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// GitHub/GitLab sync: sealing key, wake-ups, metrics, limiters.
    pub sync: Arc<sync::SyncShared>,
}

impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        BodyLimit(state.config.max_body_bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::OpenStoreError),
    #[error("cannot set up metrics")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    SecretKey(#[from] sync::crypto::KeyError),
}

impl AppState {
    /// Opens the database (applying migrations) and builds the state.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        let store = Store::open(&config.data_dir, config.sqlite_sync, config.readers).await?;
        let metrics = Metrics::new()?;
        let keys = sync::crypto::SecretBox::load(config.secret_key.as_ref(), &config.data_dir)?;
        let sync = Arc::new(sync::SyncShared::new(
            keys,
            sync::SyncMetrics::register(&metrics.registry)?,
        ));
        Ok(Self(Arc::new(Shared {
            sync,
            config: Arc::new(config),
            delivery_metrics: Arc::new(delivery::webhooks::DeliveryMetrics::register(
                &metrics.registry,
            )?),
            metrics: Arc::new(metrics),
            rate_limiter: Arc::default(),
            key_locks: Arc::default(),
            changes: store.changes.clone(),
            store,
        })))
    }
}

/// The whole HTTP surface: the API and operations routes, the MCP
/// endpoint and the dashboard, under one set of outer layers.
pub fn router(state: AppState) -> Router {
    let (api, _) = api::routes();
    let api = api
        .layer(from_fn_with_state(
            state.clone(),
            api::middleware::idempotency,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            api::middleware::authenticate,
        ));
    let core = Router::new()
        .merge(api)
        .merge(api::ops_routes())
        .with_state(state.clone());
    Router::new()
        .merge(core)
        .merge(mcp::routes(&state))
        .merge(web::routes(&state))
        .merge(sync::hooks::routes(&state))
        .fallback(api::not_found)
        .layer(from_fn(api::middleware::json_errors))
        .layer(from_fn_with_state(
            state.clone(),
            api::middleware::record_metrics,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
}

/// One span per request (exported as a trace when OTLP is configured),
/// named by the route template so traces group by endpoint.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!("request", method = %req.method(), route = %route, status = tracing::field::Empty)
}

/// Serves until `shutdown` resolves, then drains in-flight requests (for
/// at most the configured grace period) and stops the background workers.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let workers = delivery::spawn_all(state.clone(), stop.clone());
    let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
    let app = router(state.clone());
    let stop_serving = stop.clone();
    // The peer address feeds the dashboard's per-source sign-in throttle.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        stop_serving.cancel();
    });
    let result = tokio::select! {
        result = server => result,
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("grace period over; dropping remaining connections");
            Ok(())
        }
    };
    stop.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    state.store.close().await;
    result
}

/// A minimal cancellation token (a watch channel), to avoid a dependency.
mod tokio_util_shim {
    use tokio::sync::watch;

    #[derive(Clone, Debug)]
    pub struct CancellationToken(std::sync::Arc<watch::Sender<bool>>);

    impl Default for CancellationToken {
        fn default() -> Self {
            Self::new()
        }
    }

    impl CancellationToken {
        pub fn new() -> Self {
            Self(std::sync::Arc::new(watch::channel(false).0))
        }

        pub fn cancel(&self) {
            self.0.send_replace(true);
        }

        pub async fn cancelled(&self) {
            let mut rx = self.0.subscribe();
            let _ = rx.wait_for(|c| *c).await;
        }
    }
}

pub use tokio_util_shim::CancellationToken as StopSignal;
