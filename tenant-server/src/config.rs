//! The one place settings come from: flags, each with a `TASKHARBOR_*`
//! environment twin. Nothing else in the program reads the environment.

use crate::store::Durability;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Server settings go with `taskharbor [FLAGS]` or `taskharbor serve
/// [FLAGS]`; the maintenance subcommands take only what they use, so each
/// `--help` lists its own flags.
#[derive(Debug, Parser)]
#[command(
    name = "taskharbor",
    version,
    about = "TaskHarbor: a work queue for teams of humans and AI agents"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the database lives, for the subcommands that open it directly.
#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// Directory holding taskharbor.db (default: the top-level --data-dir, else ./data).
    #[arg(long, env = "TASKHARBOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// This subcommand's `--data-dir`, else the one given before it.
    pub fn resolve(&self, top: &Config) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| top.data_dir.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<Config>),
    /// Apply database migrations and exit.
    Migrate(DataDirArg),
    /// Manage API tokens directly in the database (works while the server runs).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Recovery with local access to the data directory.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Write an online, consistent copy of the database to FILE.
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Exit 0 when the server answers GET /healthz (container health checks; the image has no shell or curl).
    Healthcheck {
        /// URL to probe; default: http://127.0.0.1:<port of --listen>/healthz.
        #[arg(long)]
        url: Option<String>,
    },
    /// Bridge MCP over stdio to a server's /mcp endpoint (for clients that only launch local servers).
    Mcp {
        /// The server's MCP endpoint, e.g. https://taskharbor.example.com/mcp.
        #[arg(long, env = "TASKHARBOR_MCP_URL")]
        url: String,
        /// The API token to send; prefer the environment variable.
        #[arg(long, env = "TASKHARBOR_TOKEN", hide_env_values = true)]
        token: SecretString,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token and print its secret once.
    Create(TokenCreate),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Mint a new admin token (when the first one was lost) and print it once.
    /// Needs write access to the data directory, so only whoever runs the
    /// server can use it; revoke lost tokens afterwards with DELETE /api/tokens/{id}.
    Recover {
        #[command(flatten)]
        data: DataDirArg,
        /// A label for the new token.
        #[arg(long, default_value = "recovered")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreate {
    #[command(flatten)]
    pub data: DataDirArg,
    /// A label for the token, e.g. "ci-runner".
    #[arg(long)]
    pub name: String,
    /// The worker the token acts as; created if new.
    #[arg(long)]
    pub worker: String,
    /// The worker's kind.
    #[arg(long, value_enum, default_value = "agent")]
    pub kind: KindArg,
    /// Scopes: queue:read, queue:write, board:admin, admin (repeatable).
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Confine the token to one board.
    #[arg(long)]
    pub board_id: Option<i64>,
    /// Expire the token after this many days.
    #[arg(long)]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Human,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TASKHARBOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory holding taskharbor.db.
    #[arg(long, env = "TASKHARBOR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Public URL of this server (default: http://<listen>).
    #[arg(long, env = "TASKHARBOR_BASE_URL")]
    pub base_url: Option<String>,
    /// On first start, install this exact value as the admin token.
    #[arg(long, env = "TASKHARBOR_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<SecretString>,
    /// Allow webhook targets on loopback and private networks (LAN self-hosting, tests).
    #[arg(
        long,
        env = "TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS",
        default_value_t = false
    )]
    pub allow_private_webhooks: bool,
    /// full: fsync every commit (survives power loss); normal: survives a process crash only.
    #[arg(
        long,
        env = "TASKHARBOR_SQLITE_SYNC",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_sync: Durability,
    /// Read connections to SQLite.
    #[arg(long, env = "TASKHARBOR_READERS", default_value_t = 4)]
    pub readers: u32,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "TASKHARBOR_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests per second each token may make (0: no limit); bursts of twice that pass.
    #[arg(long, env = "TASKHARBOR_RATE_LIMIT", default_value_t = 1000)]
    pub rate_limit_per_second: u32,
    /// How often the lease reaper looks for expired claims, in milliseconds.
    #[arg(long, env = "TASKHARBOR_REAPER_INTERVAL_MS", default_value_t = 1000)]
    pub reaper_interval_ms: u64,
    /// Multiplies the webhook retry schedule (5 s, 5 min, … about 3 days); tests shrink it.
    #[arg(
        long,
        env = "TASKHARBOR_WEBHOOK_RETRY_SCALE",
        default_value_t = 1.0,
        hide = true
    )]
    pub webhook_retry_scale: f64,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "TASKHARBOR_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    /// Log format.
    #[arg(
        long,
        env = "TASKHARBOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn,rmcp=warn")]
    pub log: String,
    /// GitHub/GitLab sync: `on` mirrors every linked board (default); `off` sends no sync traffic and answers /hooks/* with 404.
    #[arg(long, env = "TASKHARBOR_SYNC", value_enum, default_value = "on")]
    pub sync: Switch,
    /// Default GitHub token for board links that bring none.
    #[arg(long, env = "TASKHARBOR_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<SecretString>,
    /// Default GitLab token for board links that bring none.
    #[arg(long, env = "TASKHARBOR_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<SecretString>,
    /// At most one sync mutation per this many milliseconds, per repository.
    #[arg(long, env = "TASKHARBOR_SYNC_MIN_INTERVAL_MS", default_value_t = 1000)]
    pub sync_min_interval_ms: u64,
    /// How often each linked board polls its repository for changes webhooks missed, in milliseconds.
    #[arg(
        long,
        env = "TASKHARBOR_SYNC_POLL_INTERVAL_MS",
        default_value_t = 60_000,
        hide = true
    )]
    pub sync_poll_interval_ms: u64,
    /// Key that encrypts stored secrets (sync tokens, webhook secrets); unset: a key file in the data dir, created on first start (0600).
    #[arg(long, env = "TASKHARBOR_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,
    /// OTLP/HTTP collector for traces; unset: no trace export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// Settings for tests and benchmarks: everything default, on `data_dir`.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        let mut config = Cli::parse_from(["taskharbor"]).config;
        config.data_dir = data_dir;
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }

    pub fn base_url(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}
