//! Prometheus metrics of the operator, served at `/metrics`.
//!
//! Each `Metrics` owns its registry (no global state), so tests can run two
//! operator instances in one process and tell their counters apart. Labels
//! are static strings only: never a tenant or resource name, which would make
//! the series count grow with the fleet.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every value of the `reason` label of the failures counter.
pub const FAILURE_REASONS: &[&str] = &[
    "kube_api",
    "conflict",
    "serialize",
    "build",
    "finalizer",
    "invalid_spec",
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: IntCounter,
    pub failures: IntCounterVec,
    pub duration: Histogram,
    /// Writes sent to the API server by kind (server-side applies, deletes, status patches, events).
    pub writes: IntCounterVec,
    pub leader: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounter::new(
            "taskharbor_operator_reconciles_total",
            "Reconciliations started",
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "taskharbor_operator_reconcile_failures_total",
                "Reconciliations that failed, by static reason",
            ),
            &["reason"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "taskharbor_operator_reconcile_duration_seconds",
                "Duration of one reconciliation",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "taskharbor_operator_api_writes_total",
                "Write requests sent to the Kubernetes API, by kind",
            ),
            &["kind"],
        )?;
        let leader = IntGauge::new(
            "taskharbor_operator_leader",
            "1 while this replica holds the leader lease",
        )?;
        // Export every failure reason at 0 from the start, so rate() and
        // alerts work before the first failure.
        for reason in FAILURE_REASONS {
            failures.with_label_values(&[reason]);
        }
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            writes,
            leader,
        })
    }

    /// Counts one write of `kind` (a static name such as `statefulset` or `status`).
    pub fn write(&self, kind: &'static str) {
        self.writes.with_label_values(&[kind]).inc();
    }

    /// Sum of all writes, for tests and the benchmark.
    pub fn total_writes(&self) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == "taskharbor_operator_api_writes_total")
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_static_labels() {
        let m = Metrics::new().expect("metrics");
        m.reconciles.inc();
        m.failures.with_label_values(&["kube_api"]).inc();
        m.write("statefulset");
        m.write("status");
        let text = m.render();
        assert!(text.contains("taskharbor_operator_reconciles_total 1"));
        assert!(
            text.contains("taskharbor_operator_reconcile_failures_total{reason=\"kube_api\"} 1")
        );
        assert!(text.contains("taskharbor_operator_reconcile_duration_seconds_bucket"));
        assert_eq!(m.total_writes(), 2);
        assert!(
            text.contains(
                "taskharbor_operator_reconcile_failures_total{reason=\"invalid_spec\"} 0"
            )
        );
    }
}
