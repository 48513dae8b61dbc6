//! Durability at `synchronous=FULL` without the writer waiting for the disk.
//!
//! SQLite at FULL fsyncs the WAL inside `COMMIT`: the single writer then
//! sits idle for the whole fsync, and every command queued behind it waits
//! for that group's fsync *and* its own. Instead the writer's connection
//! commits at `NORMAL` (the frames go to the WAL file, no fsync) and hands
//! the group to this thread, which fsyncs the WAL file and only then
//! answers the group's waiters and ticks the change signals. Meanwhile the
//! writer runs and commits the next groups; one fsync covers every group
//! committed before it started.
//!
//! What an answer promises is unchanged: a command is acknowledged only
//! once its frames are on stable storage, so it survives power loss as it
//! would at FULL (and `kill -9`, which never needed the fsync). Readers may
//! see a group's rows before its fsync returns, as other connections could
//! at NORMAL; its callers, SSE streams, long-polls and webhooks hear of it
//! only after. Checkpoints at NORMAL fsync the WAL before copying frames
//! into the database file and the database file after, so a frame never
//! reaches the database file, or a rewound WAL, unsynced.

use super::writer::{Job, Signals, WriterError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

/// A committed group waiting for its fsync.
pub(super) struct Batch {
    pub jobs: Vec<Job>,
    /// The group's `COMMIT` (a failed one is answered as such, unsynced).
    pub commit: Result<(), Arc<rusqlite::Error>>,
    /// It wrote rows: the WAL has frames to sync.
    pub wrote: bool,
    pub changed: bool,
    pub outbox: bool,
}

/// The writer's handle on the sync thread.
pub(super) struct WalSync {
    batches: mpsc::Sender<Batch>,
}

impl WalSync {
    /// Starts the thread that fsyncs `db_path`'s WAL file.
    pub fn start(db_path: &Path, signals: Signals) -> Result<Self, WriterError> {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (batches, queue) = mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || run_thread(&wal, &queue, &signals))
            .map_err(WriterError::Spawn)?;
        Ok(Self { batches })
    }

    /// Queues a committed group for the next fsync. If the thread is gone
    /// the group is dropped, so its waiters see `Abandoned`: never an
    /// answer without the fsync.
    pub fn hand_over(&self, batch: Batch) {
        if self.batches.send(batch).is_err() {
            tracing::error!("writer: the WAL sync thread has stopped; commands abandoned");
        }
    }
}

fn run_thread(wal: &Path, queue: &mpsc::Receiver<Batch>, signals: &Signals) {
    let mut pending: Vec<Batch> = Vec::new();
    while let Ok(first) = queue.recv() {
        pending.push(first);
        while let Ok(more) = queue.try_recv() {
            pending.push(more);
        }
        let synced = if pending.iter().any(|b| b.wrote && b.commit.is_ok()) {
            sync(wal)
        } else {
            Ok(())
        };
        let (mut changed, mut outbox) = (false, false);
        for batch in pending.drain(..) {
            let commit = batch.commit.and(synced.clone());
            if commit.is_ok() {
                changed |= batch.changed;
                outbox |= batch.outbox;
            }
            for job in batch.jobs {
                job.answer(commit.clone());
            }
        }
        signals.tick(changed, outbox);
    }
}

/// `fdatasync` of the WAL file, through a descriptor of our own (an fsync
/// flushes the file, whichever descriptor asks). No WAL file means
/// SQLite checkpointed and removed it: its frames are in the (synced)
/// database file.
fn sync(wal: &Path) -> Result<(), Arc<rusqlite::Error>> {
    let result = match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        tracing::error!(error = %e, "writer: fsync of the WAL failed; the group is not acknowledged");
        Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
            Some(format!("fsync of the WAL failed: {e}")),
        ))
    })
}
