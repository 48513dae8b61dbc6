//! Logs, traces and metrics.
//!
//! Logs go to stdout as text or JSON; traces go to an OTLP collector when
//! one is configured; metrics live in a Prometheus registry served at
//! `/metrics`. Labels are bounded: routes are the matched templates, never
//! raw paths.

use crate::config::{Config, LogFormat};
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the trace exporter alive; flushes it on drop.
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot build the OTLP exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

pub fn init(config: &Config) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log)?;
    let fmt = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .boxed(),
        // Colour codes only for a person at a terminal, never into files,
        // pipes or log collectors.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    let (otel, provider) = match &config.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry::trace::TracerProvider as _;
            use opentelemetry_otlp::WithExportConfig;
            let endpoint = if endpoint.ends_with("/v1/traces") {
                endpoint.clone()
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("taskharbor")
                        .build(),
                )
                .build();
            let tracer = provider.tracer("taskharbor");
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
        None => (None, None),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard { provider })
}

/// The Prometheus registry and the series the server updates.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_duration: HistogramVec,
    pub claims: IntCounterVec,
    pub conflicts: IntCounterVec,
    pub lease_expiries: IntCounter,
    pub queue_depth: IntGaugeVec,
    pub wip_saturation: GaugeVec,
    pub outbox_depth: IntGauge,
    pub outbox_oldest_seconds: Gauge,
    /// Commands the writer thread executed, and the transactions (groups)
    /// they were committed in: their ratio is the group-commit batch size.
    pub writer_commands: IntCounter,
    pub writer_groups: IntCounter,
    /// Groups rolled back and run again without a command that failed
    /// after writing (see `store::writer`).
    pub writer_replays: IntCounter,
    /// WAL rewinds by how they came about (`idle`: free, at an idle
    /// moment of the writer; `forced`: a `RESTART` on the writer), and the
    /// commands that waited for an idle one (see `store::checkpoint`).
    pub wal_rewinds: IntCounterVec,
    pub writer_rewind_holds: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("taskharbor".into()), None)?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by matched route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route", "status"],
        )?;
        let claims = IntCounterVec::new(
            Opts::new("claims_total", "Claim attempts by outcome"),
            &["outcome"],
        )?;
        let conflicts = IntCounterVec::new(
            Opts::new("conflicts_total", "Refused queue commands by error code"),
            &["code"],
        )?;
        let lease_expiries = IntCounter::new(
            "lease_expiries_total",
            "Claims released because their lease expired",
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new("queue_depth", "Items per board and status"),
            &["board", "status"],
        )?;
        let wip_saturation = GaugeVec::new(
            Opts::new(
                "wip_saturation",
                "Items in a WIP-limited lane divided by its limit",
            ),
            &["board", "lane_id", "lane"],
        )?;
        let outbox_depth = IntGauge::new(
            "webhook_outbox_depth",
            "Webhook deliveries waiting to be sent or retried",
        )?;
        let outbox_oldest_seconds = Gauge::new(
            "webhook_outbox_oldest_pending_seconds",
            "Age of the oldest pending webhook delivery",
        )?;
        let writer_commands = IntCounter::new(
            "writer_commands_total",
            "Commands executed by the single writer",
        )?;
        let writer_groups = IntCounter::new(
            "writer_groups_total",
            "Transactions the writer committed (each carries one or more commands)",
        )?;
        let writer_replays = IntCounter::new(
            "writer_replays_total",
            "Groups rolled back and run again without a command that failed after writing",
        )?;
        let wal_rewinds = IntCounterVec::new(
            Opts::new(
                "wal_rewinds_total",
                "WAL rewinds: idle = the WAL was copied back whole while the writer was idle, so its next write starts it over; forced = a RESTART run by the writer",
            ),
            &["how"],
        )?;
        let writer_rewind_holds = IntCounterVec::new(
            Opts::new(
                "writer_rewind_holds_total",
                "Times a command waited (briefly) for the checkpoint round that lets the WAL start over, by whether the round ended in time (ended) or the writer went on (expired)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(wal_rewinds.clone()))?;
        registry.register(Box::new(writer_rewind_holds.clone()))?;
        registry.register(Box::new(writer_replays.clone()))?;
        registry.register(Box::new(writer_commands.clone()))?;
        registry.register(Box::new(writer_groups.clone()))?;
        registry.register(Box::new(outbox_depth.clone()))?;
        registry.register(Box::new(outbox_oldest_seconds.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(claims.clone()))?;
        registry.register(Box::new(conflicts.clone()))?;
        registry.register(Box::new(lease_expiries.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(wip_saturation.clone()))?;
        Ok(Self {
            registry,
            http_duration,
            claims,
            conflicts,
            lease_expiries,
            queue_depth,
            wip_saturation,
            outbox_depth,
            outbox_oldest_seconds,
            writer_commands,
            writer_groups,
            writer_replays,
            wal_rewinds,
            writer_rewind_holds,
        })
    }
}

/// An error with its whole cause chain, `outer: inner: root`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    chain
}

/// The one error logger: `what` failed, with the cause chain (never a
/// secret: errors carry ids and SQL messages, not request bodies).
pub fn log_error(what: &str, error: &dyn std::error::Error) {
    tracing::error!(error = %error_chain(error), "{what}");
}
