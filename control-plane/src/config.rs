//! Command line of `taskharbor-control-plane`. Every flag also reads a
//! `TASKHARBOR_CP_*` environment variable; the environment is read nowhere else.

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use secrecy::SecretString;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubeMode {
    /// Create and follow `TaskHarbor` resources through the Kubernetes API.
    On,
    /// No cluster: approvals render the resource YAML to apply by hand.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "taskharbor-control-plane",
    version,
    about = "TaskHarbor hosted service: waitlist, tenant approval and fleet view"
)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "TASKHARBOR_CP_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Directory of the SQLite database (`control-plane.db`).
    #[arg(long, env = "TASKHARBOR_CP_DATA_DIR", default_value = "/data")]
    pub data_dir: PathBuf,
    /// Platform-admin bearer token for `/api/admin/*` (kept only as a SHA-256 hash after startup).
    #[arg(long, env = "TASKHARBOR_CP_ADMIN_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub admin_token: SecretString,
    /// `off` runs without a cluster: approvals render YAML instead of creating resources.
    #[arg(long, env = "TASKHARBOR_CP_KUBE", value_enum, default_value = "on")]
    pub kube: KubeMode,
    /// Namespace where `TaskHarbor` resources (and their Secrets) live.
    #[arg(
        long,
        env = "TASKHARBOR_CP_TENANTS_NAMESPACE",
        default_value = "tenants"
    )]
    pub tenants_namespace: String,
    /// TaskHarbor version (image tag) of newly approved tenants.
    #[arg(long, env = "TASKHARBOR_CP_TENANT_VERSION", default_value = "0.1.0")]
    pub tenant_version: String,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a trusted proxy).
    #[arg(long, env = "TASKHARBOR_CP_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// Waitlist signups allowed per client address per window.
    #[arg(long, env = "TASKHARBOR_CP_SIGNUP_RATE_LIMIT", default_value_t = 5)]
    pub signup_rate_limit: u32,
    /// Length of the rate-limit window in seconds.
    #[arg(
        long,
        env = "TASKHARBOR_CP_SIGNUP_RATE_WINDOW_SECS",
        default_value_t = 600
    )]
    pub signup_rate_window_secs: u64,
    /// Lifetime of a reveal link in hours.
    #[arg(long, env = "TASKHARBOR_CP_REVEAL_TTL_HOURS", default_value_t = 24)]
    pub reveal_ttl_hours: u64,
    /// Public base URL (e.g. `https://taskharbor.example`) used in reveal links; relative links when empty.
    #[arg(long, env = "TASKHARBOR_CP_PUBLIC_URL", default_value = "")]
    pub public_url: String,
    /// Mark cookies `Secure` (set this when served over HTTPS).
    #[arg(long, env = "TASKHARBOR_CP_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// How often the fleet follower reads the `TaskHarbor` resources, in milliseconds.
    #[arg(long, env = "TASKHARBOR_CP_FLEET_SYNC_MS", default_value_t = 2000)]
    pub fleet_sync_ms: u64,
    /// Log format.
    #[arg(
        long,
        env = "TASKHARBOR_CP_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

fn parse_secret(s: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

impl Config {
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("control-plane.db")
    }
    pub fn rate_window(&self) -> Duration {
        Duration::from_secs(self.signup_rate_window_secs.max(1))
    }
    pub fn reveal_ttl(&self) -> Duration {
        Duration::from_secs(self.reveal_ttl_hours.max(1) * 3600)
    }
}
