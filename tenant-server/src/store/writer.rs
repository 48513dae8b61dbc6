//! The single writer: one OS thread that owns the only write connection
//! and executes whole commands on it, with group commit.
//!
//! A command is a closure over a [`Tx`]. Edges hand it to [`Writer::run`]
//! and await its answer; the thread takes every command already waiting
//! (up to [`MAX_GROUP`]), opens one `BEGIN IMMEDIATE` transaction, runs the
//! commands one after another, commits once, and only then answers each
//! waiter — at `synchronous=FULL` once the fsync covering the group has
//! returned. A command that fails is undone alone: having written nothing
//! it needs no undoing; having written, its group is rolled back and run
//! again without it (see [`run_group`]). So:
//!
//! - a command costs one thread hop, not two per SQL statement, and its
//!   statements come from the connection's statement cache;
//! - WAL checkpoints run on their own thread (`super::checkpoint`), never
//!   inside the writer's commits; at `synchronous=FULL` the fsync that makes
//!   a group durable runs on another (`super::wal_sync`), so the writer
//!   executes the next group while the disk works;
//! - nothing is acknowledged before the commit that made it durable, so a
//!   `kill -9` loses only commands whose callers never got an answer;
//! - commands of one group see each other's effects in order, exactly as
//!   if they had committed one by one (the single writer serialises them).
//!
//! After a commit in which some command changed something (appended an
//! event or called [`Tx::mark_changed`]), the writer ticks the change
//! counter: the one place that wakes SSE streams, long-polls and the
//! webhook sender.

use super::checkpoint::{Checkpoints, RewindStats, Rewinds};
use super::error::{CommandError, CommandResult};
use super::read_ahead::ReadAhead;
use super::wal_sync::{Batch, WalSync};
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

/// The connection as a command sees it: inside the group's transaction,
/// after the effects of the commands before it in the group.
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

/// How one run of a command went.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ran {
    ok: bool,
    changed: bool,
    outbox: bool,
}

/// A queued command as the thread holds it: it may run more than once
/// (a replay after another command of its group failed having written),
/// keeps the result of its last run, and answers its waiter once.
pub(super) trait Queued: Send {
    /// Runs the command on `tx`, keeping its result in place of any
    /// earlier run's.
    fn run(&mut self, tx: &Tx<'_>) -> Ran;
    /// Answers the waiter with the kept result, or with the commit's
    /// failure if the command succeeded; with no result (it panicked) the
    /// waiter sees [`WriterError::Abandoned`].
    fn answer(self: Box<Self>, commit: Result<(), Arc<rusqlite::Error>>);
}

struct Pending<F, T> {
    command: F,
    result: Option<CommandResult<T>>,
    reply: oneshot::Sender<CommandResult<T>>,
}

impl<F, T> Queued for Pending<F, T>
where
    F: Fn(&Tx<'_>) -> CommandResult<T> + Send,
    T: Send,
{
    fn run(&mut self, tx: &Tx<'_>) -> Ran {
        self.result = None;
        let result = (self.command)(tx);
        let ok = result.is_ok();
        self.result = Some(result);
        Ran {
            ok,
            changed: ok && tx.changed(),
            outbox: ok && tx.outbox(),
        }
    }

    fn answer(self: Box<Self>, commit: Result<(), Arc<rusqlite::Error>>) {
        let Pending { result, reply, .. } = *self;
        let Some(result) = result else { return };
        let result = match (result, commit) {
            (Ok(_), Err(e)) => Err(WriterError::Commit(e).into()),
            (result, _) => result,
        };
        let _ = reply.send(result);
    }
}

pub(super) type Job = Box<dyn Queued>;

/// The watch channels the writer ticks after a commit.
#[derive(Clone)]
pub struct Signals {
    /// Something readers should hear about changed (SSE, long-polls, sync).
    pub changes: Arc<watch::Sender<u64>>,
    /// The webhook sender has work.
    pub outbox: Arc<watch::Sender<u64>>,
}

impl Signals {
    /// After a durable commit: wakes whoever the commands asked for.
    pub(super) fn tick(&self, changed: bool, outbox: bool) {
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        if outbox {
            self.outbox.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The handle edges and commands use; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    rewinds: Rewinds,
    read_ahead_rounds: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Counters {
    groups: AtomicU64,
    commands: AtomicU64,
    replays: AtomicU64,
}

/// How much grouping happened: commands executed, transactions committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    pub groups: u64,
    pub commands: u64,
    /// Groups rolled back and run again without a command that failed
    /// after writing.
    pub replays: u64,
    /// How the WAL was started over (see `super::checkpoint`).
    pub rewinds: RewindStats,
    /// Rounds of the queue read-ahead (see `super::read_ahead`).
    pub read_ahead_rounds: u64,
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
        // At FULL the writer commits at NORMAL and the `wal_sync` thread
        // fsyncs the WAL before anyone is answered: the writer never waits
        // for the disk, one fsync covers every group committed meanwhile.
        let conn = open_connection(path, super::Durability::Normal)?;
        let wal_sync = match durability {
            super::Durability::Full => Some(WalSync::start(path, signals.clone())?),
            super::Durability::Normal => None,
        };
        // SQLite's own checkpoints run inside the commit that takes the
        // WAL past 1,000 pages, and stalled every waiting command for
        // 100–200 ms: checkpoints run on their own thread (see `checkpoint`).
        Checkpoints::take_over(&conn)?;
        let checkpoints = Checkpoints::start(path, durability)?;
        let rewinds = checkpoints.rewinds();
        // The writer must not wait for the disk's reads either: the rows
        // `claim-next` reads next are read ahead (see `read_ahead`).
        let read_ahead = ReadAhead::start(path)?;
        let read_ahead_rounds = read_ahead.rounds();
        let (jobs, queue) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let counted = counters.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run_thread(
                    &conn,
                    &queue,
                    &signals,
                    &counted,
                    &checkpoints,
                    &read_ahead,
                    wal_sync.as_ref(),
                )
            })
            .map_err(WriterError::Spawn)?;
        Ok(Self {
            jobs,
            counters,
            rewinds,
            read_ahead_rounds,
        })
    }

    /// Commands executed and groups committed (or rolled back) so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            replays: self.counters.replays.load(Ordering::Relaxed),
            rewinds: self.rewinds.stats(),
            read_ahead_rounds: self.read_ahead_rounds.load(Ordering::Relaxed),
        }
    }

    /// Runs `command` in the next group and answers once that group has
    /// committed. An `Err` from the command undoes its own writes only
    /// (see [`run_group`]); a failed commit fails every command of the
    /// group. `command` is `Fn`: when another command of its group fails
    /// after writing, the group is rolled back and it runs again.
    pub async fn run<T, F>(&self, command: F) -> CommandResult<T>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> CommandResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<CommandResult<T>>();
        let job: Job = Box::new(Pending {
            command,
            result: None,
            reply,
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
    checkpoints: &Checkpoints,
    read_ahead: &ReadAhead,
    wal_sync: Option<&WalSync>,
) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    loop {
        let first = match queue.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Empty) => {
                // Nothing waiting: the moment for the checkpoint thread's
                // last round before a rewind (see `checkpoint`).
                checkpoints.writer_idle();
                let Ok(job) = queue.recv() else { return };
                checkpoints.writer_busy();
                job
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
        };
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        checkpoints.rewind_if_asked(conn);
        counters.groups.fetch_add(1, Ordering::Relaxed);
        counters
            .commands
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let (committed, commit) = run_group(conn, &mut group, counters);
        if committed.wrote {
            checkpoints.committed();
            read_ahead.committed();
        }
        match wal_sync {
            Some(wal_sync) => wal_sync.hand_over(Batch {
                jobs: std::mem::replace(&mut group, Vec::with_capacity(MAX_GROUP)),
                commit,
                wrote: committed.wrote,
                changed: committed.changed,
                outbox: committed.outbox,
            }),
            None => {
                for job in group.drain(..) {
                    job.answer(commit.clone());
                }
                signals.tick(committed.changed, committed.outbox);
            }
        }
    }
}

/// Runs one of the group's bookkeeping statements (`BEGIN`, `COMMIT`,
/// `ROLLBACK`) from the statement cache: parsed once, not per command.
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

/// Executes one group as one transaction, without savepoints.
///
/// A command that fails having written nothing leaves the transaction as
/// it found it: it is answered with its error and the group goes on. One
/// that fails after writing — rare: the domain decides before the store
/// writes, so only a SQLite error or a bug gets there — or panics cannot
/// be undone alone, so the transaction is rolled back, that command is
/// answered and left out, and the others run again from the start
/// (replayed: nothing was answered yet, and each sees exactly the state
/// it would have seen had the failed command never run). Every replay
/// drops one command, so a group ends after at most `len + 1` passes.
///
/// Savepoints would undo a command alone too, but cost every command a
/// copy of each page it touches (SQLite's sub-journal) plus two
/// statements: 9–12 % of the writer's time in the profile, paid for a
/// failure that almost never comes.
///
/// Leaves the group's commands (those not answered already with their
/// own error) in `group` for the caller to answer with the commit's result.
fn run_group(
    conn: &Connection,
    group: &mut Vec<Job>,
    counters: &Counters,
) -> (Committed, Result<(), Arc<rusqlite::Error>>) {
    loop {
        if let Err(e) = bookkeeping(conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "writer: cannot begin a transaction");
            // Outside a transaction nothing may run: dropping the commands
            // answers their waiters with `Abandoned`.
            group.clear();
            return (Committed::default(), Ok(()));
        }
        // Rows written so far: a group that writes none (the reaper's idle
        // ticks) gives the WAL nothing, so it must not keep the checkpoint
        // thread from seeing the instance idle.
        let rows_before = conn.total_changes();
        let mut ran: Vec<Ran> = Vec::with_capacity(group.len());
        let mut spoiled: Option<usize> = None;
        for (index, job) in group.iter_mut().enumerate() {
            let before = conn.total_changes();
            let tx = Tx::new(conn);
            let outcome = catch_unwind(AssertUnwindSafe(|| job.run(&tx)));
            let wrote = conn.total_changes() != before || conn.is_autocommit();
            match outcome {
                Ok(r) if r.ok || !wrote => ran.push(r),
                Ok(_) => {
                    spoiled = Some(index);
                    break;
                }
                Err(_) => {
                    tracing::error!("writer: a command panicked; its changes are rolled back");
                    spoiled = Some(index);
                    break;
                }
            }
        }
        if let Some(index) = spoiled {
            if let Err(e) = bookkeeping(conn, "ROLLBACK")
                && !conn.is_autocommit()
            {
                tracing::error!(error = %e, "writer: cannot roll back a spoiled group");
            }
            // Answered with its own error (a panicked one, `Abandoned`).
            group.remove(index).answer(Ok(()));
            if group.is_empty() {
                return (Committed::default(), Ok(()));
            }
            counters.replays.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let commit = bookkeeping(conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, "writer: commit failed; rolling back the group");
            let _ = conn.execute_batch("ROLLBACK");
            Arc::new(e)
        });
        let done = Committed {
            wrote: commit.is_ok() && conn.total_changes() != rows_before,
            changed: commit.is_ok() && ran.iter().any(|r| r.changed),
            outbox: commit.is_ok() && ran.iter().any(|r| r.outbox),
        };
        return (done, commit);
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
