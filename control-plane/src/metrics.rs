//! Fleet metrics at `/metrics` (Prometheus text). Each `Metrics` owns its
//! registry, so tests can run several apps in one process. Labels take only
//! static values: never a tenant id, an email or a raw path.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::store::FleetCounts;

/// Values of the `phase` label: the operator's phases plus control-plane
/// states of tenants that have no phase (yet).
pub const PHASES: &[&str] = &[
    "Pending",
    "Provisioning",
    "Ready",
    "Degraded",
    "Suspended",
    "Deleting",
    "provisioning",
    "manual",
    "deleted",
];
pub const SIGNUP_STATUSES: &[&str] = &["pending", "approved", "rejected"];
pub const SIGNUP_RESULTS: &[&str] = &["created", "duplicate", "honeypot"];
pub const ERROR_KINDS: &[&str] = &["database", "kube", "template", "rate_limited", "csrf"];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub tenants: IntGaugeVec,
    pub waitlist: IntGauge,
    pub signups_by_status: IntGaugeVec,
    pub signups: IntCounterVec,
    pub approvals: IntCounterVec,
    pub reveals: IntCounter,
    pub errors: IntCounterVec,
    pub provisioning: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let tenants = IntGaugeVec::new(
            Opts::new("taskharbor_cp_tenants", "Tenants by phase"),
            &["phase"],
        )?;
        let waitlist = IntGauge::new(
            "taskharbor_cp_waitlist_size",
            "Signups waiting for a decision",
        )?;
        let signups_by_status = IntGaugeVec::new(
            Opts::new("taskharbor_cp_signups", "Signups by status"),
            &["status"],
        )?;
        let signups = IntCounterVec::new(
            Opts::new(
                "taskharbor_cp_signup_requests_total",
                "Accepted waitlist submissions by result",
            ),
            &["result"],
        )?;
        let approvals = IntCounterVec::new(
            Opts::new("taskharbor_cp_approvals_total", "Approved signups by mode"),
            &["mode"],
        )?;
        let reveals = IntCounter::new(
            "taskharbor_cp_reveals_total",
            "Bootstrap tokens revealed through a one-time link",
        )?;
        let errors = IntCounterVec::new(
            Opts::new("taskharbor_cp_errors_total", "Errors by static kind"),
            &["kind"],
        )?;
        let provisioning = Histogram::with_opts(
            HistogramOpts::new(
                "taskharbor_cp_provisioning_seconds",
                "Time from approval to the tenant's first Ready",
            )
            .buckets(vec![
                1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
        )?;
        for p in PHASES {
            tenants.with_label_values(&[p]);
        }
        for s in SIGNUP_STATUSES {
            signups_by_status.with_label_values(&[s]);
        }
        for r in SIGNUP_RESULTS {
            signups.with_label_values(&[r]);
        }
        for m in ["kube", "manual"] {
            approvals.with_label_values(&[m]);
        }
        for k in ERROR_KINDS {
            errors.with_label_values(&[k]);
        }
        registry.register(Box::new(tenants.clone()))?;
        registry.register(Box::new(waitlist.clone()))?;
        registry.register(Box::new(signups_by_status.clone()))?;
        registry.register(Box::new(signups.clone()))?;
        registry.register(Box::new(approvals.clone()))?;
        registry.register(Box::new(reveals.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(provisioning.clone()))?;
        Ok(Self {
            registry,
            tenants,
            waitlist,
            signups_by_status,
            signups,
            approvals,
            reveals,
            errors,
            provisioning,
        })
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    /// Sets the gauges from database counts (done at scrape time).
    pub fn set_counts(&self, counts: &FleetCounts) {
        for p in PHASES {
            self.tenants.with_label_values(&[p]).set(0);
        }
        for s in SIGNUP_STATUSES {
            self.signups_by_status.with_label_values(&[s]).set(0);
        }
        for (phase, n) in &counts.tenants_by_phase {
            // Only known values become labels.
            if let Some(p) = PHASES.iter().find(|p| **p == phase.as_str()) {
                self.tenants.with_label_values(&[p]).set(*n);
            }
        }
        for (status, n) in &counts.signups_by_status {
            if let Some(s) = SIGNUP_STATUSES.iter().find(|s| **s == status.as_str()) {
                self.signups_by_status.with_label_values(&[s]).set(*n);
                if *s == "pending" {
                    self.waitlist.set(*n);
                }
            }
        }
        if !counts.signups_by_status.iter().any(|(s, _)| s == "pending") {
            self.waitlist.set(0);
        }
    }

    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
