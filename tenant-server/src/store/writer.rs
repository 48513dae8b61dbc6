//! The single writer: one OS thread that owns the only write connection
//! and executes whole commands on it, with group commit.
//!
//! A command is a closure over a [`Tx`]. Edges hand it to [`Writer::run`]
//! and await its answer; the thread takes every command already waiting
//! (up to [`MAX_GROUP`]), opens one `BEGIN IMMEDIATE` transaction, runs each
//! command inside its own `SAVEPOINT` (a failing command is undone alone
//! with `ROLLBACK TO`; a group of one needs no savepoint), commits once — one fsync at `synchronous=FULL` for
//! the whole group — and only then answers each waiter. So:
//!
//! - a command costs one thread hop, not two per SQL statement, and its
//!   statements come from the connection's statement cache;
//! - at `synchronous=NORMAL`, WAL checkpoints run on their own thread
//!   (`super::checkpoint`), never inside the writer's commits;
//! - nothing is acknowledged before the commit that made it durable, so a
//!   `kill -9` loses only commands whose callers never got an answer;
//! - commands of one group see each other's effects in order, exactly as
//!   if they had committed one by one (the single writer serialises them).
//!
//! After a commit in which some command changed something (appended an
//! event or called [`Tx::mark_changed`]), the writer ticks the change
//! counter: the one place that wakes SSE streams, long-polls and the
//! webhook sender.

use super::checkpoint::Checkpoints;
use super::error::{CommandError, CommandResult};
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Most commands one transaction carries: bounds how long the first
/// waiter of a group waits for the last one to execute.
pub const MAX_GROUP: usize = 64;

/// How long a connection waits for SQLite's locks (the sqlx pool's
/// transactions, a rewind waiting for readers) before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the writer could not carry out a command.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("sqlite error on the writer")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the group's commit failed")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("the writer thread has stopped")]
    Stopped,
    #[error("the writer dropped the command (it panicked, or its group could not start)")]
    Abandoned,
    #[error("cannot start the writer thread")]
    Spawn(#[source] std::io::Error),
}

/// The connection as a command sees it: inside its own savepoint of the
/// group's transaction.
pub struct Tx<'c> {
    conn: &'c Connection,
    changed: Cell<bool>,
    outbox: Cell<bool>,
}

impl<'c> Tx<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            changed: Cell::new(false),
            outbox: Cell::new(false),
        }
    }

    /// Says the command changed something readers should hear about.
    pub fn mark_changed(&self) {
        self.changed.set(true);
    }

    pub fn changed(&self) -> bool {
        self.changed.get()
    }

    /// Says the command gave the webhook sender work (outbox rows, a new
    /// or re-enabled endpoint, a retry): only such commits wake it, so an
    /// instance without webhooks reads no outbox per commit.
    pub fn mark_outbox(&self) {
        self.outbox.set(true);
    }

    pub fn outbox(&self) -> bool {
        self.outbox.get()
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// What the thread keeps of a run command until the commit decides.
struct Ran {
    ok: bool,
    changed: bool,
    outbox: bool,
    answer: Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>,
}

type Job = Box<dyn FnOnce(&Tx<'_>) -> Ran + Send>;

/// The watch channels the writer ticks after a commit.
#[derive(Clone)]
pub struct Signals {
    /// Something readers should hear about changed (SSE, long-polls, sync).
    pub changes: Arc<watch::Sender<u64>>,
    /// The webhook sender has work.
    pub outbox: Arc<watch::Sender<u64>>,
}

/// The handle edges and commands use; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    groups: AtomicU64,
    commands: AtomicU64,
}

/// How much grouping happened: commands executed, transactions committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    pub groups: u64,
    pub commands: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

/// The writer's pragmas: those of `super::connect_options`, so the file
/// behaves the same whichever connection touches it.
pub fn open_connection(path: &Path, durability: super::Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            super::Durability::Full => "FULL",
            super::Durability::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", "-8192")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

impl Writer {
    /// Opens the write connection and starts the thread, and the WAL
    /// checkpoint thread beside it. `signals.changes` ticks after every
    /// commit that changed something, `signals.outbox` after every commit
    /// that gave the webhook sender work.
    pub fn start(
        path: &Path,
        durability: super::Durability,
        signals: Signals,
    ) -> Result<Self, WriterError> {
        let conn = open_connection(path, durability)?;
        // At NORMAL a checkpoint's fsyncs are the only ones, and inside a
        // commit they stalled every waiting command for 100–200 ms: there
        // checkpoints run on their own thread (see `checkpoint`). At FULL
        // every commit fsyncs anyway; a checkpoint thread there made the
        // tail worse (its fsyncs queue with the commits'), so FULL keeps
        // SQLite's own checkpoints.
        let checkpoints = match durability {
            super::Durability::Normal => {
                Checkpoints::take_over(&conn)?;
                Some(Checkpoints::start(path, durability)?)
            }
            super::Durability::Full => None,
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let counted = counters.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_thread(&conn, &queue, &signals, &counted, checkpoints.as_ref()))
            .map_err(WriterError::Spawn)?;
        Ok(Self { jobs, counters })
    }

    /// Commands executed and groups committed (or rolled back) so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
        }
    }

    /// Runs `command` in the next group and answers once that group has
    /// committed. An `Err` from the command rolls back its own savepoint
    /// only; a failed commit fails every command of the group.
    pub async fn run<T, F>(&self, command: F) -> CommandResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> CommandResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<CommandResult<T>>();
        let job: Job = Box::new(move |tx| {
            let result = command(tx);
            let ok = result.is_ok();
            Ran {
                ok,
                changed: ok && tx.changed(),
                outbox: ok && tx.outbox(),
                answer: Box::new(move |commit| {
                    let result = match (result, commit) {
                        (Ok(_), Err(e)) => Err(WriterError::Commit(e).into()),
                        (result, _) => result,
                    };
                    let _ = reply.send(result);
                }),
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| CommandError::from(WriterError::Stopped))?;
        answer
            .await
            .map_err(|_| CommandError::from(WriterError::Abandoned))?
    }
}

fn run_thread(
    conn: &Connection,
    queue: &mpsc::Receiver<Job>,
    signals: &Signals,
    counters: &Counters,
    checkpoints: Option<&Checkpoints>,
) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = queue.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Some(checkpoints) = checkpoints {
            checkpoints.rewind_if_asked(conn);
        }
        counters.groups.fetch_add(1, Ordering::Relaxed);
        counters
            .commands
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let Committed {
            wrote,
            changed,
            outbox,
        } = run_group(conn, &mut group);
        if wrote && let Some(checkpoints) = checkpoints {
            checkpoints.committed();
        }
        if changed {
            signals.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        if outbox {
            signals.outbox.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Runs one of the group's bookkeeping statements (`BEGIN`, `SAVEPOINT`,
/// `RELEASE`, …) from the statement cache: parsed once, not per command.
fn bookkeeping(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// What a group's commit did.
#[derive(Default)]
struct Committed {
    /// It committed a command that wrote rows: the WAL grew.
    wrote: bool,
    /// Some command changed something readers should hear about.
    changed: bool,
    /// Some command gave the webhook sender work.
    outbox: bool,
}

/// Executes one group as one transaction.
fn run_group(conn: &Connection, group: &mut Vec<Job>) -> Committed {
    if let Err(e) = bookkeeping(conn, "BEGIN IMMEDIATE") {
        let e = Arc::new(e);
        tracing::error!(error = %e, "writer: cannot begin a transaction");
        // Outside a transaction nothing may run: dropping the commands
        // answers their waiters with `Abandoned`.
        group.clear();
        return Committed::default();
    }
    // A group of one needs no savepoint: the transaction is the command's
    // own, so its failure rolls back the transaction. A savepoint costs a
    // copy of every page the command touches (SQLite's sub-journal), and at
    // light load most groups hold one command.
    let solo = group.len() == 1;
    // Rows written so far: a group that writes none (the reaper's idle
    // ticks) gives the WAL nothing, so it must not keep the checkpoint
    // thread from seeing the instance idle.
    let rows_before = conn.total_changes();
    let mut undo = false;
    let mut ran: Vec<Ran> = Vec::with_capacity(group.len());
    let mut broken: Option<rusqlite::Error> = None;
    for job in group.drain(..) {
        if broken.is_some() {
            drop(job);
            continue;
        }
        if !solo && let Err(e) = bookkeeping(conn, "SAVEPOINT command") {
            broken = Some(e);
            drop(job);
            continue;
        }
        let tx = Tx::new(conn);
        let outcome = catch_unwind(AssertUnwindSafe(|| job(&tx)));
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!("writer: a command panicked; its changes are rolled back");
                // The waiter's sender was dropped with the panicking
                // closure: it sees `Abandoned`.
                if solo {
                    undo = true;
                } else if let Err(e) = conn.execute_batch("ROLLBACK TO command; RELEASE command") {
                    broken = Some(e);
                }
                continue;
            }
        };
        let end = match (solo, outcome.ok) {
            (true, ok) => {
                undo = !ok;
                Ok(())
            }
            (false, true) => bookkeeping(conn, "RELEASE command"),
            (false, false) => bookkeeping(conn, "ROLLBACK TO command")
                .and_then(|()| bookkeeping(conn, "RELEASE command")),
        };
        if let Err(e) = end {
            broken = Some(e);
        }
        ran.push(outcome);
    }
    let commit = match broken {
        Some(e) => {
            tracing::error!(error = %e, "writer: savepoint handling failed; rolling back the group");
            let _ = conn.execute_batch("ROLLBACK");
            Err(Arc::new(e))
        }
        // The lone command failed: its own answer says so; nothing commits.
        None if undo => {
            if let Err(e) = bookkeeping(conn, "ROLLBACK") {
                tracing::error!(error = %e, "writer: cannot roll back a failed command");
            }
            Ok(())
        }
        None => bookkeeping(conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, "writer: commit failed; rolling back the group");
            let _ = conn.execute_batch("ROLLBACK");
            Arc::new(e)
        }),
    };
    let done = Committed {
        wrote: commit.is_ok() && ran.iter().any(|r| r.ok) && conn.total_changes() != rows_before,
        changed: commit.is_ok() && ran.iter().any(|r| r.changed),
        outbox: commit.is_ok() && ran.iter().any(|r| r.outbox),
    };
    for r in ran {
        (r.answer)(commit.clone());
    }
    done
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
