//! Dashboard users in SQLite (issue 14): the reads the sign-in and users
//! pages need (reader pool), and the writes the user commands run on the
//! writer thread: create, disable or enable, new password, delete. Each
//! change that locks a user out ends their sessions in the same command.
//! Deleting a user releases their claims through the queue's own release
//! (forced, by the admin, reason "user deleted") and removes the sign-in;
//! their worker row stays, so the history still names who did what.

use super::error::{CommandResult, not_found};
use super::writer::Tx;
use super::{queue, sessions};
use crate::domain::users::{NewUser, check_user_action, check_worker_for_user};
use crate::domain::{DomainError, Principal, WorkerKind};
use rusqlite::{OptionalExtension, params};
use sqlx::SqlitePool;

/// One user as stored, with their session and claim counts (the users
/// page turns it into its own view).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub worker_id: i64,
    pub scopes: String,
    pub board_id: Option<i64>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub sessions: i64,
    /// Items the user's worker holds a claim on.
    pub claims: i64,
}

/// What signing in checks a password against.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    /// argon2id PHC string.
    pub password_hash: String,
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.username, u.worker_id, u.scopes, u.board_id, u.created_at, u.disabled_at, \
         (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id) AS sessions, \
         (SELECT COUNT(*) FROM items i WHERE i.claim_worker_id = u.worker_id) AS claims \
         FROM users u ORDER BY u.username",
    )
    .fetch_all(pool)
    .await
}

/// How many users exist (none: the dashboard is not set up yet).
pub async fn count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

/// An enabled user's id and password hash, by username.
pub async fn credentials(
    pool: &SqlitePool,
    username: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("SELECT id, password_hash FROM users WHERE username = ? AND disabled_at IS NULL")
        .bind(username.trim())
        .fetch_optional(pool)
        .await
}

/// How many users exist, inside a command (setup's "only the first" check).
pub fn count_in(tx: &Tx<'_>) -> CommandResult<i64> {
    Ok(tx
        .prepare_cached("SELECT COUNT(*) FROM users")?
        .query_row([], |r| r.get(0))?)
}

/// Creates the user and links it to the human worker of the same name
/// (created if new; a name held by an agent is refused).
pub fn create(tx: &Tx<'_>, new: &NewUser, password_hash: &str, now_ms: i64) -> CommandResult<i64> {
    if let Some(board) = new.board_id {
        let exists: Option<i64> = tx
            .prepare_cached("SELECT id FROM boards WHERE id = ?")?
            .query_row([board], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Err(DomainError::validation("board_id", "no such board").into());
        }
    }
    let taken: Option<i64> = tx
        .prepare_cached("SELECT id FROM users WHERE username = ?")?
        .query_row([&new.username], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        return Err(DomainError::validation("username", "is taken").into());
    }
    let worker: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, kind FROM workers WHERE name = ?")?
        .query_row([&new.username], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    // An unknown kind is treated as an agent's: refused.
    check_worker_for_user(
        worker
            .as_ref()
            .map(|(_, kind)| WorkerKind::parse(kind).unwrap_or(WorkerKind::Agent)),
    )?;
    let worker_id = match worker {
        Some((id, _)) => id,
        None => tx
            .prepare_cached("INSERT INTO workers (name, kind, created_at) VALUES (?, 'human', ?)")?
            .insert(params![&new.username, now_ms])?,
    };
    let linked: Option<i64> = tx
        .prepare_cached("SELECT id FROM users WHERE worker_id = ?")?
        .query_row([worker_id], |r| r.get(0))
        .optional()?;
    if linked.is_some() {
        return Err(DomainError::validation("username", "is taken").into());
    }
    let scopes = serde_json::to_string(&new.scopes).unwrap_or_else(|_| "[]".into());
    Ok(tx
        .prepare_cached(
            "INSERT INTO users (username, password_hash, worker_id, scopes, board_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .insert(params![
            &new.username,
            password_hash,
            worker_id,
            scopes,
            new.board_id,
            now_ms
        ])?)
}

/// The worker of a user the admin may act on; `404` / `403` otherwise.
fn target(tx: &Tx<'_>, admin: &Principal, user_id: i64) -> CommandResult<i64> {
    let worker_id: i64 = tx
        .prepare_cached("SELECT worker_id FROM users WHERE id = ?")?
        .query_row([user_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| not_found("user"))?;
    check_user_action(admin, worker_id)?;
    Ok(worker_id)
}

/// Disables (or re-enables) a user; disabling ends their sessions.
pub fn set_disabled(
    tx: &Tx<'_>,
    admin: &Principal,
    user_id: i64,
    disabled: bool,
    now_ms: i64,
) -> CommandResult<()> {
    target(tx, admin, user_id)?;
    tx.prepare_cached("UPDATE users SET disabled_at = ? WHERE id = ?")?
        .execute(params![disabled.then_some(now_ms), user_id])?;
    if disabled {
        sessions::delete_for_user(tx, user_id)?;
    }
    Ok(())
}

/// Sets a new password hash (argon2id PHC) and ends the user's sessions.
pub fn set_password(
    tx: &Tx<'_>,
    admin: &Principal,
    user_id: i64,
    password_hash: &str,
) -> CommandResult<()> {
    target(tx, admin, user_id)?;
    tx.prepare_cached("UPDATE users SET password_hash = ? WHERE id = ?")?
        .execute(params![password_hash, user_id])?;
    sessions::delete_for_user(tx, user_id)?;
    Ok(())
}

/// Deletes a user: their claims are released (each one by the queue's
/// release, so history, webhooks and the queue see an ordinary forced
/// release), then their sessions and sign-in go, all in one command.
/// Returns how many claims were released.
pub fn delete(tx: &Tx<'_>, admin: &Principal, user_id: i64, now_ms: i64) -> CommandResult<usize> {
    let worker_id = target(tx, admin, user_id)?;
    let held: Vec<i64> = tx
        .prepare_cached("SELECT id FROM items WHERE claim_worker_id = ? ORDER BY id")?
        .query_map([worker_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for item_id in held.iter().copied() {
        queue::release(tx, admin, item_id, Some("user deleted"), None, now_ms)?;
    }
    sessions::delete_for_user(tx, user_id)?;
    tx.prepare_cached("DELETE FROM users WHERE id = ?")?
        .execute([user_id])?;
    Ok(held.len())
}
