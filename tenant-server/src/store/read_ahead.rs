//! Read-ahead of the queue's head, off the writer.
//!
//! Every command runs on the one writer thread, so a page the writer has to
//! fetch from the disk stalls every command queued behind it. The writer's
//! own writes stay in its page cache, but `claim-next` walks into item rows
//! nobody has touched since they were created, and on a tenant's volume
//! those pages leave the OS page cache (memory pressure, or a proactive
//! reclaimer such as DAMON's `pageout`, measured on the benchmark machine).
//! The writer then reads them from the disk, and behind a checkpoint's
//! writeback one such 4 KiB read took 13–370 ms (`perf trace`, see
//! BENCHMARKS.md).
//!
//! The same holds for the index pages a claim and its moves write into
//! next to the item's row: the item's entry in `items_by_lane` and the
//! `events_by_item` leaf its new events go into, both keyed by the item and
//! as cold as its row; and the handoff notes a claim reads.
//!
//! So this thread reads, on its own read-only connection, what the writer
//! will read next: the first open items of each board in queue order (both
//! orders when agents take only agent-ready items), and those items' rows
//! and index pages ([`ITEM_PAGES`], once per [`REREAD`] per item). Its
//! reads put those pages in the OS page cache; when the writer gets there
//! it copies them from memory. A disk stall now delays this thread, which
//! nobody waits for.
//!
//! **How far ahead.** Not far: a page read ahead can leave the page cache
//! again before the writer gets to it. On the benchmark machine DAMON's
//! `pageout` evicts even pages read moments before: with a 1.5 s lead, 252
//! of the writer's 258 slow reads in a traced run were of pages this thread
//! had read, as page-cache hits, 1.3–1.7 s before. So each queue's lead
//! follows its pace: [`LEAD_ROUNDS`] rounds of the items that left its head
//! lately, plus [`SLACK`] (about 200 ms at the peak claim rate).
//!
//! It runs after commits only ([`ReadAhead::committed`] is the writer's
//! nudge), at most once per [`EVERY`]: an idle instance reads nothing and
//! holds no connection for it.

use super::queue::{QUEUE_ORDER, queue_sql};
use rusqlite::{Connection, OpenFlags};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Least time between two rounds while commits arrive.
pub const EVERY: Duration = Duration::from_millis(50);

/// A queue's lead, in rounds of its pace (the items that left its head
/// per round, lately).
pub const LEAD_ROUNDS: i64 = 4;

/// Items read ahead beyond the pace: the claimed items still at the head
/// and a burst.
pub const SLACK: i64 = 128;

/// The most read ahead of one queue.
pub const AHEAD_MAX: i64 = 8192;

/// How long without a commit before the thread closes its connection.
pub const CLOSE_AFTER: Duration = Duration::from_secs(30);

/// The writer's handle: nudge after a commit.
#[derive(Debug)]
pub struct ReadAhead {
    nudge: mpsc::SyncSender<()>,
    rounds: Arc<AtomicU64>,
}

impl ReadAhead {
    /// Starts the thread; it opens its own read-only connection to `path`
    /// at the first commit.
    pub fn start(path: &Path) -> Result<Self, super::writer::WriterError> {
        let path = path.to_owned();
        let (nudge, nudges) = mpsc::sync_channel::<()>(1);
        let rounds = Arc::new(AtomicU64::new(0));
        let counted = rounds.clone();
        std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || run_thread(&path, &nudges, &counted))
            .map_err(super::writer::WriterError::Spawn)?;
        Ok(Self { nudge, rounds })
    }

    /// After a commit that wrote rows: the queue may have moved. Never
    /// blocks.
    pub fn committed(&self) {
        let _ = self.nudge.try_send(());
    }

    /// A handle on the count of rounds run so far, which outlives the
    /// writer's move of `self` onto its thread.
    pub fn rounds(&self) -> Arc<AtomicU64> {
        self.rounds.clone()
    }
}

fn run_thread(path: &Path, nudges: &mpsc::Receiver<()>, rounds: &AtomicU64) {
    // Opened at the first commit and closed after [`CLOSE_AFTER`] without
    // one: an instance nobody writes to carries no connection (its schema,
    // its page cache) for this.
    let mut conn: Option<Connection> = None;
    let mut state = State::default();
    loop {
        let nudged = match conn {
            Some(_) => nudges.recv_timeout(CLOSE_AFTER),
            None => nudges
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match nudged {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                conn = None;
                state = State::default();
                continue;
            }
            // The writer (the only sender) has stopped.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if conn.is_none() {
            match open(path) {
                Ok(opened) => conn = Some(opened),
                Err(e) => tracing::warn!(error = %e, "queue read-ahead: cannot open the database"),
            }
        }
        if let Some(conn) = &conn {
            match read_queue_heads(conn, &mut state) {
                Ok(_) => {
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "queue read-ahead failed"),
            }
        }
        // Commits during the pause leave one nudge waiting: the next round.
        std::thread::sleep(EVERY);
    }
}

/// The thread's connection: reads only, and a small page cache, since its
/// pages must reach the OS page cache, not stay in its own (the next commit
/// invalidates them anyway).
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.busy_timeout(super::writer::BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", "-256")?;
    Ok(conn)
}

/// The first items of a queue `claim-next` reads, as `store/queue.rs`
/// defines it (every board's, and the agent-ready one where agents need
/// it): `(priority, id)` off the index alone; rows are read by
/// [`ITEM_PAGES`], for new items only. Parameters: board id, limit.
pub(crate) fn queue_head_sql(agents_only_ready: bool) -> String {
    format!("{}{QUEUE_ORDER} LIMIT ?", queue_sql(agents_only_ready))
}

/// What a claim and the moves after it read or write of one item: its row
/// (every column, so a long body's overflow pages too), its blockers
/// (the claimability test), the `events_by_item` leaf its new events go
/// into, its `items_by_lane` entry that moves with it, and the handoff
/// (`super::tx::handoff`: the latest checkpoint and progress notes). Each
/// an index seek.
const ITEM_PAGES: &str = "SELECT i.*, \
     (SELECT count(*) FROM item_deps d JOIN items bi ON bi.id = d.blocked_by_id \
        WHERE d.item_id = i.id AND bi.status <> 'done'), \
     (SELECT max(e.id) FROM events e INDEXED BY events_by_item WHERE e.item_id = i.id), \
     (SELECT l.id FROM items l INDEXED BY items_by_lane WHERE l.lane_id = i.lane_id AND l.id = i.id), \
     (SELECT length(c.body) FROM comments c INDEXED BY comments_by_item \
        WHERE c.item_id = i.id AND c.kind = 'checkpoint' ORDER BY c.id DESC LIMIT 1), \
     (SELECT length(c.body) FROM comments c INDEXED BY comments_by_item \
        WHERE c.item_id = i.id AND c.kind = 'progress' ORDER BY c.id DESC LIMIT 1) \
     FROM items i WHERE i.id = ?1";

/// How long before an item still at the head has its pages read again.
/// With the short lead most items reach the writer about 200 ms after
/// they entered the head and are read once; those that stay (claimed and
/// in progress, or waiting behind others) are read again this often.
pub const REREAD: Duration = Duration::from_secs(10);

/// What the thread remembers between rounds.
#[derive(Debug, Default)]
pub struct State {
    /// The items whose pages a recent round read, and when.
    recent: HashMap<i64, Instant>,
    /// Each queue's lead, by board and whether it is the agent-ready one.
    leads: HashMap<(i64, bool), Lead>,
}

/// How far one queue is read ahead.
#[derive(Debug)]
struct Lead {
    ahead: i64,
    /// Items that left the head per round: the last round's, or less than
    /// the round before's (a burst is remembered for a few rounds).
    pace: i64,
    /// The head the last round read, as (priority, id): the queue's order.
    last: HashSet<(i64, i64)>,
}

impl Default for Lead {
    fn default() -> Self {
        Self {
            ahead: 2 * SLACK,
            pace: 0,
            last: HashSet::new(),
        }
    }
}

impl Lead {
    /// After a round read `head` (`self.ahead` long at most): the lead for
    /// the next. What left the head counts, not what a shorter lead no
    /// longer reached.
    fn follow(&mut self, head: &[(i64, i64)]) {
        let now: HashSet<(i64, i64)> = head.iter().copied().collect();
        let reached = match head.last() {
            Some(end) if head.len() as i64 >= self.ahead => Some(*end),
            // The whole queue was read: whatever is missing has left.
            _ => None,
        };
        let gone = self
            .last
            .difference(&now)
            .filter(|key| reached.is_none_or(|end| **key < end))
            .count() as i64;
        self.pace = gone.max(self.pace * 3 / 4);
        self.ahead = (SLACK + LEAD_ROUNDS * self.pace).clamp(SLACK, AHEAD_MAX);
        self.last = now;
    }
}

/// What one round read.
#[derive(Debug, Default)]
pub struct Round {
    /// The queues' first item ids, in queue order, queue after queue.
    pub heads: Vec<i64>,
    /// Of those, the items whose pages were read (not read recently).
    pub read: Vec<i64>,
}

/// One round: the first open items of each board's queue (one read
/// transaction), then for those not read in the last [`REREAD`] the pages
/// of [`ITEM_PAGES`], a statement per item: never one long read
/// transaction, which would keep checkpoints from copying back frames and
/// the WAL from starting over for as long as a slow disk read takes.
pub fn read_queue_heads(conn: &Connection, state: &mut State) -> rusqlite::Result<Round> {
    let now = Instant::now();
    let mut round = Round::default();
    {
        let tx = conn.unchecked_transaction()?;
        let boards: Vec<(i64, bool)> = tx
            .prepare_cached("SELECT id, agents_need_ready FROM boards ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut queues = Vec::with_capacity(boards.len() * 2);
        for (board, agents_need_ready) in boards {
            queues.push((board, false));
            if agents_need_ready {
                queues.push((board, true));
            }
        }
        state.leads.retain(|queue, _| queues.contains(queue));
        for queue in queues {
            let lead = state.leads.entry(queue).or_default();
            let head = tx
                .prepare_cached(&queue_head_sql(queue.1))?
                .query_map([queue.0, lead.ahead], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
            lead.follow(&head);
            round.heads.extend(head.into_iter().map(|(_, id)| id));
        }
        tx.finish()?;
    }
    let mut item = conn.prepare_cached(ITEM_PAGES)?;
    let columns = item.column_count();
    for &id in &round.heads {
        let fresh = |at: &Instant| now.duration_since(*at) < REREAD;
        if state.recent.get(&id).is_some_and(fresh) {
            continue;
        }
        let mut rows = item.query([id])?;
        if let Some(row) = rows.next()? {
            for column in 0..columns {
                row.get_ref(column)?;
            }
        }
        state.recent.insert(id, now);
        round.read.push(id);
    }
    state
        .recent
        .retain(|_, at| now.duration_since(*at) < REREAD);
    Ok(round)
}

#[cfg(test)]
#[path = "read_ahead_tests.rs"]
mod tests;
