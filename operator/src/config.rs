//! Command line of `taskharbor-operator` (every flag also reads an
//! environment variable). Environment is read nowhere else.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::controller::{
    Settings,
    build::{BuildConfig, DEFAULT_DENIED_CIDRS},
};
use crate::leader::LeaseConfig;

#[derive(Debug, Parser)]
#[command(
    name = "taskharbor-operator",
    version,
    about = "Runs one TaskHarbor pod per TaskHarbor resource"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup; boxing buys nothing
pub enum Command {
    /// Run the controller (with leader election, metrics and health endpoints).
    Run(RunArgs),
    /// Print the TaskHarbor CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "TASKHARBOR_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub metrics_addr: SocketAddr,
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "TASKHARBOR_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Image repository for tenants that do not set spec.image.
    #[arg(
        long,
        env = "TASKHARBOR_OPERATOR_DEFAULT_IMAGE",
        default_value = "ghcr.io/taskharbor/taskharbor"
    )]
    pub default_image: String,
    /// Namespace of the ingress controller; its pods may reach tenant pods.
    #[arg(
        long,
        env = "TASKHARBOR_OPERATOR_INGRESS_NAMESPACE",
        default_value = "ingress-nginx"
    )]
    pub ingress_namespace: String,
    /// Namespace of the control plane; its pods may reach tenant pods.
    #[arg(
        long,
        env = "TASKHARBOR_OPERATOR_CONTROL_PLANE_NAMESPACE",
        default_value = "taskharbor-system"
    )]
    pub control_plane_namespace: String,
    /// ingressClassName of tenant Ingresses (cluster default when unset).
    #[arg(long, env = "TASKHARBOR_OPERATOR_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// CIDRs tenant pods may not reach (repeat the flag; defaults to private, CGNAT, link-local and loopback ranges).
    #[arg(
        long = "egress-deny-cidr",
        env = "TASKHARBOR_OPERATOR_EGRESS_DENY_CIDRS",
        value_delimiter = ','
    )]
    pub egress_deny_cidrs: Vec<String>,
    /// Seconds between resyncs of a healthy resource.
    #[arg(
        long,
        env = "TASKHARBOR_OPERATOR_RESYNC_SECONDS",
        default_value_t = 300
    )]
    pub resync_seconds: u64,
    /// Use a Lease so only one replica reconciles at a time.
    #[arg(long, env = "TASKHARBOR_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "TASKHARBOR_OPERATOR_LEASE_NAME",
        default_value = "taskharbor-operator"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Identity of this replica in the Lease and in events (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Lease duration in seconds (a standby takes over this long after the leader vanishes).
    #[arg(long, env = "TASKHARBOR_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
}

impl RunArgs {
    /// Identity from the flag, or a random one (unique per process).
    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .unwrap_or_else(|| format!("taskharbor-operator-{:016x}", rand::random::<u64>()))
    }

    pub fn settings(&self, identity: &str) -> Settings {
        let egress_denied_cidrs = if self.egress_deny_cidrs.is_empty() {
            DEFAULT_DENIED_CIDRS
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            self.egress_deny_cidrs.clone()
        };
        Settings {
            build: BuildConfig {
                default_image: self.default_image.clone(),
                ingress_namespace: self.ingress_namespace.clone(),
                control_plane_namespace: self.control_plane_namespace.clone(),
                ingress_class: self.ingress_class.clone(),
                egress_denied_cidrs,
            },
            namespace: self.watch_namespace.clone(),
            resync: Duration::from_secs(self.resync_seconds),
            instance: Some(identity.to_owned()),
            ..Settings::default()
        }
    }

    pub fn lease(&self, identity: &str) -> LeaseConfig {
        let duration = Duration::from_secs(self.lease_seconds.max(3));
        LeaseConfig {
            lease_duration: duration,
            renew_deadline: duration * 2 / 3,
            retry_period: duration / 5,
            ..LeaseConfig::new(&self.lease_name, &self.lease_namespace, identity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::try_parse_from([
            "taskharbor-operator",
            "run",
            "--default-image",
            "mirror/th",
            "--ingress-namespace",
            "edge",
            "--egress-deny-cidr",
            "10.0.0.0/8",
            "--leader-elect",
            "false",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected")
        };
        let settings = args.settings("me");
        assert_eq!(settings.build.default_image, "mirror/th");
        assert_eq!(settings.build.ingress_namespace, "edge");
        assert_eq!(settings.build.egress_denied_cidrs, ["10.0.0.0/8"]);
        assert!(!args.leader_elect);
        assert_eq!(args.metrics_addr.port(), 8081);
    }
}
