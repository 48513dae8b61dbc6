//! Operations endpoints: health, readiness, metrics, the OpenAPI document.

use crate::AppState;
use crate::store::queue;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::Encoder;
use serde_json::json;

/// Liveness: the process serves requests.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

/// Prometheus text format; queue gauges are read from the database now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match queue::stats(&state.store.reader).await {
        Ok(stats) => {
            state.metrics.queue_depth.reset();
            for (board, status, count) in stats.depth {
                state
                    .metrics
                    .queue_depth
                    .with_label_values(&[board.as_str(), status.as_str()])
                    .set(count);
            }
            state.metrics.wip_saturation.reset();
            for (board, lane_id, lane, count, limit) in stats.wip {
                let saturation = if limit == 0 {
                    1.0
                } else {
                    count as f64 / limit as f64
                };
                state
                    .metrics
                    .wip_saturation
                    .with_label_values(&[
                        board.as_str(),
                        lane_id.to_string().as_str(),
                        metric_label(&lane).as_str(),
                    ])
                    .set(saturation);
            }
        }
        Err(error) => tracing::warn!(%error, "queue statistics unavailable"),
    }
    match crate::store::webhooks::outbox_stats(&state.store.reader, crate::store::now_ms()).await {
        Ok((depth, oldest)) => {
            state.metrics.outbox_depth.set(depth);
            state.metrics.outbox_oldest_seconds.set(oldest);
        }
        Err(error) => tracing::warn!(%error, "outbox statistics unavailable"),
    }
    // Counters are monotonic on both sides: add what happened since the last scrape.
    let writer = state.store.commands.stats();
    let m = &state.metrics;
    m.writer_commands
        .inc_by(writer.commands.saturating_sub(m.writer_commands.get()));
    m.writer_groups
        .inc_by(writer.groups.saturating_sub(m.writer_groups.get()));
    m.writer_replays
        .inc_by(writer.replays.saturating_sub(m.writer_replays.get()));
    let rewinds = writer.rewinds;
    for (counter, label, count) in [
        (&m.wal_rewinds, "idle", rewinds.idle),
        (&m.wal_rewinds, "forced", rewinds.forced),
        (
            &m.writer_rewind_holds,
            "ended",
            rewinds.holds.saturating_sub(rewinds.holds_expired),
        ),
        (&m.writer_rewind_holds, "expired", rewinds.holds_expired),
    ] {
        let counter = counter.with_label_values(&[label]);
        counter.inc_by(count.saturating_sub(counter.get()));
    }
    let mut buffer = Vec::new();
    if let Err(error) =
        prometheus::TextEncoder::new().encode(&state.metrics.registry.gather(), &mut buffer)
    {
        tracing::error!(%error, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buffer).into_response()
}

/// A lane name as a metrics label: the series is keyed by `lane_id`, so
/// this is only for reading; kept to printable ASCII and 50 characters.
pub fn metric_label(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(50)
        .collect()
}

/// The OpenAPI document, rendered on first request (not at start-up).
pub fn openapi_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let (_, doc) = super::routes();
        serde_json::to_value(&doc)
            .map(super::contract::finish)
            .and_then(|doc| serde_json::to_string_pretty(&doc))
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot render the OpenAPI document");
                String::from("{}")
            })
    })
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
