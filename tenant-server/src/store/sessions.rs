//! Dashboard sessions in SQLite: the read that turns a cookie's hash into
//! a signed-in user (reader pool), and the writes the session commands
//! run on the writer thread (start, end, renew, sweep). Only the SHA-256
//! of a session id is stored, like tokens.
//!
//! [`SeenNotes`] is the in-memory note that keeps the idle-timer renewal
//! to one write per session per minute, batched across sessions.

use super::error::CommandResult;
use super::writer::Tx;
use crate::domain::Scope;
use crate::domain::users::{TOUCH_EVERY_MS, User};
use rusqlite::params;
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::Mutex;

/// A session's hash as stored.
pub type SessionHash = [u8; 32];

/// A session and its user, as stored (the user not disabled).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub username: String,
    pub worker_id: i64,
    pub worker_name: String,
    /// JSON array of scope names.
    pub scopes: String,
    pub board_id: Option<i64>,
    pub csrf_token: String,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl SessionRow {
    pub fn user(&self) -> User {
        User {
            id: self.user_id,
            username: self.username.clone(),
            worker_id: self.worker_id,
            worker_name: self.worker_name.clone(),
            scopes: serde_json::from_str::<Vec<Scope>>(&self.scopes).unwrap_or_default(),
            board_id: self.board_id,
        }
    }
}

/// The session with this hash, if its user is enabled (primary key lookup).
pub async fn find(
    pool: &SqlitePool,
    hash: &SessionHash,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.username, u.worker_id, w.name AS worker_name, u.scopes, u.board_id, \
         s.csrf_token, s.last_seen_at, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
         JOIN workers w ON w.id = u.worker_id WHERE s.id_hash = ? AND u.disabled_at IS NULL",
    )
    .bind(&hash[..])
    .fetch_optional(pool)
    .await
}

/// Starts a session for `user_id`.
pub fn insert(
    tx: &Tx<'_>,
    hash: &SessionHash,
    user_id: i64,
    csrf: &str,
    now_ms: i64,
    expires_at: i64,
) -> CommandResult<()> {
    tx.prepare_cached(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &hash[..],
        user_id,
        csrf,
        now_ms,
        now_ms,
        expires_at
    ])?;
    Ok(())
}

/// Deletes sessions that ended (at `now_ms`) or went idle (seen before `idle_before`).
pub fn purge_ended(tx: &Tx<'_>, now_ms: i64, idle_before: i64) -> CommandResult<usize> {
    Ok(tx
        .prepare_cached("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")?
        .execute(params![now_ms, idle_before])?)
}

/// Ends one session (sign-out).
pub fn delete(tx: &Tx<'_>, hash: &SessionHash) -> CommandResult<bool> {
    Ok(tx
        .prepare_cached("DELETE FROM sessions WHERE id_hash = ?")?
        .execute([&hash[..]])?
        > 0)
}

/// Ends every session of a user.
pub fn delete_for_user(tx: &Tx<'_>, user_id: i64) -> CommandResult<usize> {
    Ok(tx
        .prepare_cached("DELETE FROM sessions WHERE user_id = ?")?
        .execute([user_id])?)
}

/// Renews idle timers: `(session hash, seen at)`; never moves one back.
pub fn touch(tx: &Tx<'_>, seen: &[(SessionHash, i64)]) -> CommandResult<()> {
    let mut update = tx.prepare_cached(
        "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?",
    )?;
    for (hash, at) in seen {
        update.execute(params![at, &hash[..], at])?;
    }
    Ok(())
}

/// Beyond this many sessions noted, old notes are dropped (bounds memory).
const MAX_NOTES: usize = 10_000;

#[derive(Debug, Default)]
struct Notes {
    /// Session → when its renewal was last noted.
    noted: HashMap<SessionHash, i64>,
    /// Renewals noted and not yet written.
    pending: HashMap<SessionHash, i64>,
}

/// Which sessions were seen and when, so that the idle timer is written
/// at most once a minute per session however many requests arrive, and
/// those writes go in one command.
#[derive(Debug, Default)]
pub struct SeenNotes {
    inner: Mutex<Notes>,
}

/// What the caller of [`SeenNotes::note`] should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// Nothing: renewed recently or already pending.
    Nothing,
    /// The first renewal pending: schedule a flush.
    ScheduleFlush,
}

impl SeenNotes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that a session stored as last seen at `last_seen_at` was
    /// used at `now_ms`, when its renewal is due.
    pub fn note(&self, hash: &SessionHash, last_seen_at: i64, now_ms: i64) -> Noted {
        if !crate::domain::users::touch_due(last_seen_at, now_ms) {
            return Noted::Nothing;
        }
        let mut notes = self.lock();
        if notes
            .noted
            .get(hash)
            .is_some_and(|at| *at + TOUCH_EVERY_MS >= now_ms)
        {
            return Noted::Nothing;
        }
        if notes.noted.len() >= MAX_NOTES {
            notes.noted.retain(|_, at| *at + TOUCH_EVERY_MS >= now_ms);
            if notes.noted.len() >= MAX_NOTES {
                // All recent: forgetting costs at most one extra write each.
                notes.noted.clear();
            }
        }
        notes.noted.insert(*hash, now_ms);
        let first = notes.pending.is_empty();
        notes.pending.insert(*hash, now_ms);
        if first {
            Noted::ScheduleFlush
        } else {
            Noted::Nothing
        }
    }

    /// Takes the renewals noted since the last call.
    pub fn take_pending(&self) -> Vec<(SessionHash, i64)> {
        self.lock().pending.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_renewed_once_a_minute_however_often_it_is_used() {
        let notes = SeenNotes::default();
        let (a, b) = ([1; 32], [2; 32]);
        // Stored as seen just now: nothing to do.
        assert_eq!(notes.note(&a, 1_000, 2_000), Noted::Nothing);
        let due = 1_000 + TOUCH_EVERY_MS + 1;
        assert_eq!(notes.note(&a, 1_000, due), Noted::ScheduleFlush);
        // Concurrent requests with the same stale row: noted once.
        assert_eq!(notes.note(&a, 1_000, due + 1), Noted::Nothing);
        // Another session joins the pending batch without a second flush.
        assert_eq!(notes.note(&b, 1_000, due + 2), Noted::Nothing);
        let mut pending = notes.take_pending();
        pending.sort();
        assert_eq!(pending, vec![(a, due), (b, due + 2)]);
        // Still the stale row a minute later: due again.
        let later = due + TOUCH_EVERY_MS + 1;
        assert_eq!(notes.note(&a, 1_000, later), Noted::ScheduleFlush);
        assert_eq!(notes.take_pending(), vec![(a, later)]);
    }
}
