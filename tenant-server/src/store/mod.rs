//! SQLite storage: the pool pair, migrations, backup, and the commands.
//!
//! Every write goes through [`Store::writer`], a pool of exactly one
//! connection: commands queue for it in FIFO order instead of fighting for
//! SQLite's write lock, and a command's reads and writes share one
//! transaction, which is what makes a claim atomic. Reads use
//! [`Store::reader`] and never wait for writers (WAL).

pub mod auth_cache;
pub mod boards;
pub mod checkpoint;
pub mod comments;
pub mod error;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod items;
pub mod model;
pub mod queue;
pub mod read_ahead;
pub mod search;
pub mod sessions;
pub mod stats;
pub mod tokens;
pub(crate) mod tx;
pub mod users;
mod wal_sync;
pub mod webhook_health;
pub mod webhooks;
pub mod writer;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use error::{CommandError, CommandResult};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/tenant");

/// The database file inside the data directory.
pub const DB_FILE: &str = "taskharbor.db";

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// fsync on every commit: survives power loss (default).
    Full,
    /// fsync at checkpoints: survives a process crash (`kill -9`), not power loss.
    Normal,
}

#[derive(Clone, Debug)]
pub struct Store {
    /// The writer thread: every command runs here (see `writer`).
    pub commands: writer::Writer,
    /// An sqlx connection to the same file for migrations and the writes
    /// not yet moved to the writer thread; its transactions begin
    /// `IMMEDIATE`, so the two never deadlock, they queue on SQLite's lock.
    pub writer: SqlitePool,
    pub reader: SqlitePool,
    /// Ticks after every committed change (wakes long-polls, SSE streams
    /// and sync); the writer thread is what ticks it.
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Ticks after a commit that gave the webhook sender work (outbox
    /// rows, a re-enabled endpoint, a retry), so that the sender does not
    /// read the outbox after every commit.
    pub outbox: Arc<tokio::sync::watch::Sender<u64>>,
    /// Working tokens by secret hash (see `auth_cache`).
    pub auth: Arc<auth_cache::AuthCache>,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    #[error("cannot create data directory {path}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot apply migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot start the writer")]
    Writer(#[from] writer::WriterError),
}

pub fn connect_options(path: &Path, durability: Durability) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // 8 MiB page cache per connection at most; the default 2 MiB
        // makes 10^6-item boards page in and out.
        .pragma("cache_size", "-8192")
        .pragma("temp_store", "memory")
        .log_statements(tracing::log::LevelFilter::Trace)
}

impl Store {
    /// Opens (creating if needed) `data_dir/taskharbor.db` and applies migrations.
    pub async fn open(
        data_dir: &Path,
        durability: Durability,
        readers: u32,
    ) -> Result<Self, OpenStoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenStoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let options = connect_options(&path, durability);
        let open_err = |source| OpenStoreError::Open {
            path: path.clone(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(Duration::from_secs(300))
            .connect_with(options.read_only(true))
            .await
            .map_err(open_err)?;
        let changes = Arc::new(tokio::sync::watch::channel(0).0);
        let outbox = Arc::new(tokio::sync::watch::channel(0).0);
        let signals = writer::Signals {
            changes: changes.clone(),
            outbox: outbox.clone(),
        };
        let commands = writer::Writer::start(&path, durability, signals)?;
        Ok(Self {
            commands,
            writer,
            reader,
            changes,
            outbox,
            auth: Arc::default(),
            path,
        })
    }

    /// Runs a command on the writer thread (see [`writer::Writer::run`]).
    pub async fn run<T, F>(&self, command: F) -> CommandResult<T>
    where
        T: Send + 'static,
        F: Fn(&writer::Tx<'_>) -> CommandResult<T> + Send + 'static,
    {
        self.commands.run(command).await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether both pools answer a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// An online, consistent copy of the database (`VACUUM INTO`), taken
/// without stopping the server: readers and the writer carry on.
pub async fn backup(db_path: &Path, target: &Path) -> Result<(), sqlx::Error> {
    if target.exists() {
        return Err(sqlx::Error::Protocol(format!(
            "{} already exists",
            target.display()
        )));
    }
    let mut conn = SqliteConnectOptions::from_str("sqlite:")?
        .filename(db_path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?;
    sqlx::query("VACUUM INTO ?")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Milliseconds since the Unix epoch; the only clock commands read.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
