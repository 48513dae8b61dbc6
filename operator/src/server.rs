//! The operator's own small HTTP server: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (it has talked to the API
//! server). It listens on its own port, separate from anything tenant-facing.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get,
};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct HealthState {
    pub metrics: Metrics,
    /// Set once the operator reached the API server; readiness follows it.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<HealthState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: HealthState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (u16, String) {
        let request = axum::http::Request::get(path)
            .body(Body::empty())
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("response");
        let code = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn health_endpoints_and_metrics_are_served() {
        let metrics = Metrics::new().expect("metrics");
        metrics.reconciles.inc();
        let ready = Arc::new(AtomicBool::new(false));
        let app = router(HealthState {
            metrics,
            ready: ready.clone(),
        });
        assert_eq!(get(&app, "/healthz").await.0, 200);
        assert_eq!(get(&app, "/readyz").await.0, 503);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get(&app, "/readyz").await.0, 200);
        let (code, body) = get(&app, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("taskharbor_operator_reconciles_total 1"));
    }
}
