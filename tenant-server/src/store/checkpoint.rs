//! WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that takes the WAL past
//! 1,000 pages: the committing connection fsyncs the WAL, copies it back
//! into the database file and fsyncs that. On the single writer this stalls
//! every waiting command for as long as those fsyncs take (100–200 ms
//! measured under load, a few times a second): the whole half-load p99.
//!
//! So the writer turns auto-checkpointing off and, after each commit,
//! nudges this thread. The thread waits [`PAUSE`] to gather commits, then
//! runs a `PASSIVE` checkpoint on its own connection: it copies back what
//! no reader still needs, never takes the write lock, and the writer goes
//! on appending to the WAL meanwhile. An idle server gets no nudges, so the
//! thread sleeps in `recv` and wakes nobody.
//!
//! **Rewinds.** SQLite starts the WAL over from its first page, for free,
//! when a write transaction begins while every frame has been copied back
//! and no reader still reads the old ones. Under sustained load the writer
//! appends while each checkpoint runs, so that moment never comes by itself
//! and the WAL would grow without bound. When a checkpoint finds the WAL
//! longer than [`REWIND_FRAMES`], the thread makes the moment (see
//! [`rewind`]): it catches up, then runs its last round only while the
//! writer is idle, and a command arriving during that round waits for it
//! at most [`REWIND_HOLD`]. The writer itself then only writes the new WAL
//! header (one fsync) at its next commit. Before, the writer ran a
//! `RESTART` checkpoint itself at its next group: the copy of the last
//! frames plus two fsyncs on the writer, and any disk stall during them
//! stalled every waiting command (see BENCHMARKS.md). That `RESTART` is now
//! the fallback for a writer that is never idle (a saturating load) once
//! the WAL passes [`FORCE_FRAMES`].
//!
//! At `synchronous=FULL` the same holds: the writer's connection commits at
//! NORMAL and `super::wal_sync` fsyncs the WAL before answering, so this
//! thread's checkpoints are the only other fsyncs.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long the thread gathers commits before checkpointing them.
pub const PAUSE: Duration = Duration::from_millis(200);

/// WAL length (in pages) past which the thread gets the WAL rewound:
/// 32 MiB at SQLite's default 4 KiB page, about half a second of peak
/// writes.
pub const REWIND_FRAMES: i64 = 8192;

/// WAL length past which a writer that has not been idle long enough for a
/// free rewind is asked to `RESTART` the WAL itself.
pub const FORCE_FRAMES: i64 = 2 * REWIND_FRAMES;

/// Longest a command arriving at an idle writer waits for the checkpoint
/// round that lets the WAL start over. The round copies the last few
/// hundred frames and fsyncs twice; in the half-load runs of
/// BENCHMARKS.md 0–11 of 18–28 holds per run outlasted 4 ms. During a disk
/// stall the writer stops waiting and the thread tries again later.
pub const REWIND_HOLD: Duration = Duration::from_millis(4);

/// How often the thread looks for an idle writer while it wants a rewind.
pub const IDLE_POLL: Duration = Duration::from_millis(1);

/// How long the thread tries for a free rewind before it asks the writer
/// to `RESTART` anyway (a reader holding an old snapshot for that long).
pub const REWIND_PATIENCE: Duration = Duration::from_secs(2);

/// How long a forced rewind waits for readers still on the old WAL before
/// it is put off to the next request.
pub const REWIND_WAIT: Duration = Duration::from_millis(5);

/// `PRAGMA journal_size_limit`: a rewound WAL file is cut back to this many
/// bytes, so an idle instance does not keep a load peak's WAL on its
/// volume. Above [`FORCE_FRAMES`]: a rewind under load does not also pay
/// for an `ftruncate`.
pub const WAL_SIZE_LIMIT: i64 = 3 * REWIND_FRAMES * 4096;

/// How long without a commit before the thread empties the WAL file
/// (`TRUNCATE`): a quiet instance keeps no WAL on its volume.
pub const IDLE: Duration = Duration::from_secs(2);

/// The writer's side: nudge after a commit, say when idle, and the forced
/// rewind request.
#[derive(Debug)]
pub struct Checkpoints {
    nudge: mpsc::SyncSender<()>,
    shared: Arc<Shared>,
}

/// What the writer and the checkpoint thread share.
#[derive(Debug, Default)]
struct Shared {
    /// The thread asks the writer to `RESTART` the WAL itself.
    force: AtomicBool,
    gate: Gate,
    counters: RewindCounters,
}

/// Where the writer and the thread meet for a free rewind: the writer says
/// when it waits for work, the thread runs its last round only then, and a
/// writer woken during that round waits for it (at most [`REWIND_HOLD`]).
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    round_over: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    writer_idle: bool,
    round: bool,
    /// The writer stopped waiting for the running round: it may have
    /// written during it.
    writer_went_on: bool,
}

#[derive(Debug, Default)]
struct RewindCounters {
    idle: AtomicU64,
    forced: AtomicU64,
    holds: AtomicU64,
    holds_expired: AtomicU64,
}

/// How the WAL was rewound so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewindStats {
    /// Rounds that copied the whole WAL back while the writer was idle: its
    /// next write starts the WAL over.
    pub idle: u64,
    /// `RESTART`s the writer ran itself (never idle long enough).
    pub forced: u64,
    /// Times a command waited for such a round.
    pub holds: u64,
    /// Of those, the times the round outlasted [`REWIND_HOLD`] and the
    /// writer went on (the round then cannot rewind).
    pub holds_expired: u64,
}

/// What a checkpoint reported: `PRAGMA wal_checkpoint`'s three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The checkpoint could not finish (a reader or writer was in the way).
    pub busy: bool,
    /// Pages in the WAL.
    pub log_frames: i64,
    /// Pages of it now copied back into the database file.
    pub checkpointed_frames: i64,
}

impl CheckpointReport {
    /// Every frame is copied back: the next write transaction starts the
    /// WAL over (unless a reader still reads the old frames).
    fn all_copied(&self) -> bool {
        !self.busy && self.checkpointed_frames == self.log_frames
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)` on `conn`.
pub fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<CheckpointReport> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(CheckpointReport {
            busy: row.get::<_, i64>(0)? != 0,
            log_frames: row.get(1)?,
            checkpointed_frames: row.get(2)?,
        })
    })
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is three flags: a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `round` if the writer is idle, holding off a writer that wakes
    /// meanwhile; `None` if the writer was busy. With the result: whether
    /// the writer wrote nothing during the round (it never stopped
    /// waiting).
    fn round_if_idle<T>(&self, round: impl FnOnce() -> T) -> Option<(T, bool)> {
        {
            let mut state = self.lock();
            if !state.writer_idle {
                return None;
            }
            state.round = true;
            state.writer_went_on = false;
        }
        let result = round();
        let intact = {
            let mut state = self.lock();
            state.round = false;
            !state.writer_went_on
        };
        self.round_over.notify_all();
        Some((result, intact))
    }
}

/// Reads the rewind counters.
#[derive(Debug, Clone)]
pub struct Rewinds(Arc<Shared>);

impl Rewinds {
    /// How the WAL was rewound so far.
    pub fn stats(&self) -> RewindStats {
        let counters = &self.0.counters;
        RewindStats {
            idle: counters.idle.load(Ordering::Relaxed),
            forced: counters.forced.load(Ordering::Relaxed),
            holds: counters.holds.load(Ordering::Relaxed),
            holds_expired: counters.holds_expired.load(Ordering::Relaxed),
        }
    }
}

impl Checkpoints {
    /// Starts the checkpoint thread on its own connection to `path`.
    pub fn start(
        path: &Path,
        durability: super::Durability,
    ) -> Result<Self, super::writer::WriterError> {
        let conn = super::writer::open_connection(path, durability)?;
        // `TRUNCATE` waits for the writer and readers through the busy
        // handler while holding the write lock: briefly, then gives up.
        conn.busy_timeout(REWIND_WAIT * 10)?;
        let (nudge, nudges) = mpsc::sync_channel::<()>(1);
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run_thread(&conn, &nudges, &theirs))
            .map_err(super::writer::WriterError::Spawn)?;
        Ok(Self { nudge, shared })
    }

    /// Turns off SQLite's checkpoints inside `conn`'s commits (this thread
    /// takes them over) and bounds the WAL file a rewind leaves behind.
    pub fn take_over(conn: &Connection) -> rusqlite::Result<()> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
    }

    /// After a commit: there are frames to copy back. Never blocks.
    pub fn committed(&self) {
        let _ = self.nudge.try_send(());
    }

    /// The writer is about to wait for work: the thread may run the round
    /// that lets the WAL start over.
    pub fn writer_idle(&self) {
        self.shared.gate.lock().writer_idle = true;
    }

    /// The writer has work again: if that round is running, it waits for
    /// it, at most [`REWIND_HOLD`].
    pub fn writer_busy(&self) {
        let gate = &self.shared.gate;
        let mut state = gate.lock();
        state.writer_idle = false;
        if state.round {
            let counters = &self.shared.counters;
            counters.holds.fetch_add(1, Ordering::Relaxed);
            let (mut state, waited) = gate
                .round_over
                .wait_timeout_while(state, REWIND_HOLD, |s| s.round)
                .unwrap_or_else(|e| e.into_inner());
            if waited.timed_out() {
                state.writer_went_on = true;
                counters.holds_expired.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A handle on the rewind counters that outlives the writer's move of
    /// `self` onto its thread.
    pub fn rewinds(&self) -> Rewinds {
        Rewinds(self.shared.clone())
    }

    /// Between groups, on the writer: rewinds the WAL itself if the thread
    /// asked (the writer was never idle long enough for a free rewind).
    pub fn rewind_if_asked(&self, conn: &Connection) {
        if !self.shared.force.swap(false, Ordering::Relaxed) {
            return;
        }
        // RESTART waits for readers of the old WAL through the busy
        // handler: give them a moment, never the writer's 10 s.
        let rewound = conn
            .busy_timeout(REWIND_WAIT)
            .and_then(|()| checkpoint(conn, "RESTART"));
        if let Err(e) = conn.busy_timeout(super::writer::BUSY_TIMEOUT) {
            tracing::warn!(error = %e, "cannot restore the writer's busy timeout");
        }
        match rewound {
            Ok(report) if report.busy => {
                tracing::debug!(?report, "WAL rewind deferred: a reader is in the way");
            }
            Ok(_) => {
                self.shared.counters.forced.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "WAL rewind failed"),
        }
    }
}

fn run_thread(conn: &Connection, nudges: &mpsc::Receiver<()>, shared: &Shared) {
    let mut idle = true;
    loop {
        let nudged = if idle {
            nudges
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            nudges.recv_timeout(IDLE)
        };
        match nudged {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Quiet for a while: copy back and empty the WAL. This
                // takes the write lock for a moment; a command arriving
                // meanwhile waits on the busy handler.
                if let Err(e) = checkpoint(conn, "TRUNCATE") {
                    tracing::warn!(error = %e, "WAL truncation failed");
                }
                idle = true;
                continue;
            }
            // The writer (the only sender) has stopped.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        idle = false;
        std::thread::sleep(PAUSE);
        let _ = nudges.try_recv();
        match checkpoint(conn, "PASSIVE") {
            Ok(report) if report.log_frames > REWIND_FRAMES => rewind(conn, shared, report),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Gets the WAL (longer than [`REWIND_FRAMES`]) started over.
///
/// Catches up first, so that little is left to copy. Then, each
/// [`IDLE_POLL`], if the writer is waiting for work, runs a round that
/// copies the rest: if the writer stayed idle (or held off) through it,
/// every frame is copied and the writer's next write starts the WAL over.
/// While the writer is busy the thread keeps copying every
/// [`KEEP_UP`]; past [`FORCE_FRAMES`] or [`REWIND_PATIENCE`] it asks the
/// writer to `RESTART` instead.
fn rewind(conn: &Connection, shared: &Shared, first: CheckpointReport) {
    let started = Instant::now();
    let mut last = catch_up(conn, first);
    let mut kept_up = Instant::now();
    loop {
        if last.log_frames > FORCE_FRAMES || started.elapsed() > REWIND_PATIENCE {
            catch_up(conn, last);
            shared.force.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(IDLE_POLL);
        let round = match shared.gate.round_if_idle(|| checkpoint(conn, "PASSIVE")) {
            // Everything up to the WAL's end is copied only if the writer
            // appended nothing meanwhile: a round's report counts the
            // frames as they were when it started.
            Some((Ok(report), true)) if report.all_copied() => {
                shared.counters.idle.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some((round, _)) => round,
            None if kept_up.elapsed() >= KEEP_UP => {
                kept_up = Instant::now();
                checkpoint(conn, "PASSIVE")
            }
            None => continue,
        };
        match round {
            Ok(report) => last = report,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                return;
            }
        }
    }
}

/// While waiting for an idle writer, how often the thread copies back
/// anyway, so that whichever rewind comes has little left to copy.
pub const KEEP_UP: Duration = Duration::from_millis(50);

/// Frames appended during a catch-up checkpoint below which the WAL counts
/// as caught up.
pub const CAUGHT_UP_FRAMES: i64 = 256;

/// Checkpoints again, straight away, until the frames appended during the
/// last checkpoint are few (at most four more rounds; each copies only
/// what the one before left, so they shrink fast), and returns the last
/// report. Whatever round rewinds the WAL must copy and fsync what is left
/// while commands wait: measured for the writer's `RESTART`, 5–10 ms right
/// after a 200 ms gathering pause, 3.3 ms median after catching up.
fn catch_up(conn: &Connection, mut last: CheckpointReport) -> CheckpointReport {
    for _ in 0..4 {
        match checkpoint(conn, "PASSIVE") {
            Ok(report) => {
                let appended = report.log_frames - last.log_frames;
                last = report;
                if report.busy || appended < CAUGHT_UP_FRAMES {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                break;
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn scratch(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("t.db");
        let conn = super::super::writer::open_connection(&path, Durability::Normal).expect("open");
        Checkpoints::take_over(&conn).expect("pragmas");
        conn.execute_batch("CREATE TABLE blob (b BLOB NOT NULL)")
            .expect("table");
        (path, conn)
    }

    /// Writes `mib` MiB in 256 KiB rows, one commit per row.
    fn write(conn: &Connection, mib: usize) {
        for _ in 0..mib * 4 {
            conn.execute("INSERT INTO blob (b) VALUES (randomblob(262144))", [])
                .expect("insert");
        }
    }

    #[test]
    fn the_thread_copies_commits_back_into_the_database_file() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, conn) = scratch(dir.path());
        let checkpoints = Checkpoints::start(&path, Durability::Normal).expect("start");
        let before = std::fs::metadata(&path).expect("db").len();
        write(&conn, 4);
        checkpoints.committed();
        // Auto-checkpointing is off: only the thread can grow the file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let grown = loop {
            let len = std::fs::metadata(&path).expect("db").len();
            if len >= before + 4 * 1024 * 1024 || std::time::Instant::now() > deadline {
                break len;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            grown >= before + 4 * 1024 * 1024,
            "db file {before} -> {grown} bytes"
        );
    }

    #[test]
    fn a_requested_rewind_restarts_the_wal_at_its_first_page() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, conn) = scratch(dir.path());
        let checkpoints = Checkpoints::start(&path, Durability::Normal).expect("start");
        write(&conn, 4);
        // Not asked: nothing happens, the WAL keeps its frames.
        checkpoints.rewind_if_asked(&conn);
        conn.execute("INSERT INTO blob (b) VALUES (x'00')", [])
            .expect("insert");
        let kept = checkpoint(&conn, "PASSIVE").expect("checkpoint");
        assert!(kept.log_frames > 1000, "{kept:?}");
        // Asked: the WAL starts over (and its file is cut back).
        write(&conn, (WAL_SIZE_LIMIT / (1024 * 1024)) as usize + 4);
        checkpoints.shared.force.store(true, Ordering::Relaxed);
        checkpoints.rewind_if_asked(&conn);
        assert!(!checkpoints.shared.force.load(Ordering::Relaxed));
        conn.execute("INSERT INTO blob (b) VALUES (x'00')", [])
            .expect("insert");
        let rewound = checkpoint(&conn, "PASSIVE").expect("checkpoint");
        assert!(rewound.log_frames < 10, "{rewound:?}");
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .expect("wal")
            .len();
        assert!(wal <= WAL_SIZE_LIMIT as u64, "{wal} bytes");
    }

    #[test]
    fn the_last_round_runs_only_while_the_writer_is_idle_and_holds_it_off_at_most_briefly() {
        let checkpoints = Checkpoints {
            nudge: mpsc::sync_channel(1).0,
            shared: Arc::default(),
        };
        let gate = &checkpoints.shared.gate;
        // A writer with work: no round.
        assert!(gate.round_if_idle(|| ()).is_none());
        // An idle writer woken during a round that outlasts the hold waits
        // for the hold, not for the round.
        checkpoints.writer_idle();
        std::thread::scope(|scope| {
            let (started, round_started) = mpsc::channel();
            let round = scope.spawn(move || {
                gate.round_if_idle(|| {
                    started.send(()).expect("send");
                    std::thread::sleep(Duration::from_millis(500));
                })
            });
            round_started.recv().expect("the round started");
            let woken = Instant::now();
            checkpoints.writer_busy();
            let waited = woken.elapsed();
            assert!(
                waited >= REWIND_HOLD && waited < Duration::from_millis(400),
                "the writer waited {waited:?}"
            );
            assert!(round.join().expect("round").is_some());
        });
        assert_eq!(checkpoints.rewinds().stats().holds, 1);
        // Woken with no round running: no wait.
        checkpoints.writer_idle();
        checkpoints.writer_busy();
        assert_eq!(checkpoints.rewinds().stats().holds, 1);
        assert!(gate.round_if_idle(|| ()).is_none());
    }

    /// The real writer (with its checkpoint thread) on a scratch file, a
    /// runtime to await its answers, and the WAL's path.
    fn writer_on_scratch(
        dir: &Path,
    ) -> (
        super::super::writer::Writer,
        tokio::runtime::Runtime,
        std::path::PathBuf,
    ) {
        let (path, conn) = scratch(dir);
        drop(conn);
        let signals = super::super::writer::Signals {
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            outbox: Arc::new(tokio::sync::watch::channel(0).0),
        };
        let writer = super::super::writer::Writer::start(&path, Durability::Normal, signals)
            .expect("writer");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (writer, runtime, dir.join("t.db-wal"))
    }

    /// Commands one at a time, as an agent fleet below the writer's
    /// capacity sends them: the writer is idle between them, and the WAL
    /// starts over at such a moment, never through the writer's `RESTART`.
    #[test]
    fn a_writer_with_idle_moments_gets_its_wal_started_over_without_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, runtime, _) = writer_on_scratch(dir.path());
        let write = || {
            runtime
                .block_on(writer.run(|tx| {
                    tx.execute("INSERT INTO blob (b) VALUES (randomblob(262144))", [])?;
                    Ok(())
                }))
                .expect("write");
        };
        // One and a half times the rewind threshold, in 256 KiB commands.
        let commands = (REWIND_FRAMES * 4096 * 3 / 2 / 262_144) as usize;
        for _ in 0..commands {
            write();
        }
        let deadline = Instant::now() + REWIND_PATIENCE + PAUSE * 5;
        while writer.stats().rewinds.idle == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = writer.stats().rewinds;
        assert!(stats.idle >= 1, "{stats:?}");
        assert_eq!(stats.forced, 0, "{stats:?}");
        // The next write starts the WAL over.
        write();
        let conn =
            super::super::writer::open_connection(&dir.path().join("t.db"), Durability::Normal)
                .expect("open");
        let report = checkpoint(&conn, "PASSIVE").expect("checkpoint");
        assert!(
            report.log_frames < REWIND_FRAMES,
            "{report:?} after {commands} commands of 64 pages"
        );
    }

    /// The lease reaper runs a command every few hundred ms that usually
    /// changes nothing: such commits must not count as activity, or an
    /// idle instance's WAL would never be emptied.
    #[test]
    fn commands_that_write_nothing_do_not_keep_the_wal_from_being_emptied() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, runtime, wal_path) = writer_on_scratch(dir.path());
        runtime
            .block_on(writer.run(|tx| {
                tx.execute("INSERT INTO blob (b) VALUES (randomblob(65536))", [])?;
                Ok(())
            }))
            .expect("write");
        let wal_len = || std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
        assert!(wal_len() > 0, "the write is in the WAL");
        let deadline = std::time::Instant::now() + IDLE * 3;
        while wal_len() > 0 && std::time::Instant::now() < deadline {
            runtime
                .block_on(writer.run(|tx| {
                    tx.query_row("SELECT COUNT(*) FROM blob", [], |r| r.get::<_, i64>(0))?;
                    tx.execute("UPDATE blob SET b = b WHERE 0", [])?;
                    Ok(())
                }))
                .expect("a command that changes nothing");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            wal_len(),
            0,
            "the WAL was emptied while only no-op commands ran"
        );
    }

    #[test]
    fn sustained_writes_through_the_writer_keep_the_wal_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let (writer, runtime, wal_path) = writer_on_scratch(dir.path());
        let mut largest = 0;
        // Ten times the rewind threshold, as fast as the writer takes it;
        // between two checkpoints the writer may add tens of MiB at this
        // rate, so the bound is loose: without rewinds the WAL would hold
        // everything written.
        let mib = (REWIND_FRAMES * 4096 * 10 / (1024 * 1024)) as usize;
        for _ in 0..mib * 4 {
            runtime
                .block_on(writer.run(|tx| {
                    tx.execute("INSERT INTO blob (b) VALUES (randomblob(262144))", [])?;
                    Ok(())
                }))
                .expect("write");
            largest = largest.max(std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0));
        }
        assert!(
            largest < (mib as u64 * 1024 * 1024) / 2,
            "the WAL grew to {largest} bytes for {mib} MiB written"
        );
    }
}
