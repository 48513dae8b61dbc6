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
//! Under sustained load the writer appends while each checkpoint runs, so
//! the checkpoint never catches up with the WAL's end and SQLite never
//! rewinds the WAL: it would grow without bound. When a checkpoint finds the
//! WAL longer than [`REWIND_FRAMES`], it asks the writer to rewind it: at its
//! next group boundary the writer runs a `RESTART` checkpoint itself, which
//! only has the few frames appended since this thread's checkpoint left to
//! copy. That short stall, once per [`REWIND_FRAMES`] pages written, is the
//! price of a bounded WAL.
//!
//! At `synchronous=FULL` the same holds: the writer's connection commits at
//! NORMAL and `super::wal_sync` fsyncs the WAL before answering, so this
//! thread's checkpoints are the only other fsyncs. (When the writer still
//! fsynced inside each commit, a checkpoint thread at FULL made the tail
//! worse; the FULL runs since are in BENCHMARKS.md.)

use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long the thread gathers commits before checkpointing them.
pub const PAUSE: Duration = Duration::from_millis(200);

/// WAL length (in pages) past which the writer is asked to rewind it:
/// 32 MiB at SQLite's default 4 KiB page, about half a second of peak
/// writes. Each rewind stalls the writer for a few ms (3.3 ms median, after
/// [`catch_up`]); a longer WAL means fewer of them, but both runs with
/// 64 MiB steps (before the catch-up) had their half-load run collapse,
/// cause not established, so 32 MiB it is.
pub const REWIND_FRAMES: i64 = 8192;

/// How long a rewind waits for readers still on the old WAL before it is
/// put off to the next request.
pub const REWIND_WAIT: Duration = Duration::from_millis(5);

/// `PRAGMA journal_size_limit`: a rewound WAL file is cut back to this many
/// bytes, so an idle instance does not keep a load peak's WAL on its volume.
pub const WAL_SIZE_LIMIT: i64 = 2 * REWIND_FRAMES * 4096;

/// How long without a commit before the thread empties the WAL file
/// (`TRUNCATE`): a quiet instance keeps no WAL on its volume.
pub const IDLE: Duration = Duration::from_secs(2);

/// The writer's side: nudge after a commit, and the rewind request.
#[derive(Debug)]
pub struct Checkpoints {
    nudge: mpsc::SyncSender<()>,
    rewind: Arc<AtomicBool>,
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
        let rewind = Arc::new(AtomicBool::new(false));
        let asked = rewind.clone();
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run_thread(&conn, &nudges, &asked))
            .map_err(super::writer::WriterError::Spawn)?;
        Ok(Self { nudge, rewind })
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

    /// Between groups, on the writer: rewinds the WAL if the thread asked.
    pub fn rewind_if_asked(&self, conn: &Connection) {
        if !self.rewind.swap(false, Ordering::Relaxed) {
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
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL rewind failed"),
        }
    }
}

fn run_thread(conn: &Connection, nudges: &mpsc::Receiver<()>, rewind: &AtomicBool) {
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
            Ok(report) if report.log_frames > REWIND_FRAMES => {
                catch_up(conn, report);
                rewind.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Frames appended during a catch-up checkpoint below which the WAL counts
/// as caught up.
pub const CAUGHT_UP_FRAMES: i64 = 256;

/// Before asking the writer to rewind: checkpoints again, straight away,
/// until the frames appended during the last checkpoint are few (at most
/// four more rounds; each copies only what the one before left, so they
/// shrink fast). The writer's `RESTART` must copy and fsync whatever is
/// left, and it stalls every waiting command while it does: measured,
/// 5–10 ms right after a 200 ms gathering pause, 20–30 ms when the thread
/// lagged further behind.
fn catch_up(conn: &Connection, mut last: CheckpointReport) {
    for _ in 0..4 {
        match checkpoint(conn, "PASSIVE") {
            Ok(report) => {
                let appended = report.log_frames - last.log_frames;
                last = report;
                if report.busy || appended < CAUGHT_UP_FRAMES {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                return;
            }
        }
    }
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
        checkpoints.rewind.store(true, Ordering::Relaxed);
        checkpoints.rewind_if_asked(&conn);
        assert!(!checkpoints.rewind.load(Ordering::Relaxed));
        conn.execute("INSERT INTO blob (b) VALUES (x'00')", [])
            .expect("insert");
        let rewound = checkpoint(&conn, "PASSIVE").expect("checkpoint");
        assert!(rewound.log_frames < 10, "{rewound:?}");
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .expect("wal")
            .len();
        assert!(wal <= WAL_SIZE_LIMIT as u64, "{wal} bytes");
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
