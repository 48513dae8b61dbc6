//! Managing dashboard users (issue 14): the admin's list, disabling and
//! re-enabling, password resets, and deletion. Each change ends the
//! user's sessions at once. Deleting a user releases their claims through
//! the queue's own release command (forced, by the admin, reason "user
//! deleted") and removes the sign-in; their worker row stays, so the
//! history still names who did what.

use super::error::{CommandResult, not_found};
use super::{Store, queue};
use crate::domain::{DomainError, Principal};
use serde::Serialize;
use sqlx::SqlitePool;

/// One user as the admin's list shows them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

async fn worker_of(pool: &SqlitePool, user_id: i64) -> CommandResult<i64> {
    sqlx::query_scalar("SELECT worker_id FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| not_found("user"))
}

/// Admins manage other users; nobody locks themselves out by accident.
fn check_not_self(admin: &Principal, worker_id: i64) -> CommandResult<()> {
    if admin.worker_id == worker_id {
        return Err(DomainError::Forbidden(
            "you cannot disable, delete or reset yourself here".into(),
        )
        .into());
    }
    Ok(())
}

/// Disables (or re-enables) a user; disabling ends their sessions.
pub async fn set_disabled(
    pool: &SqlitePool,
    admin: &Principal,
    user_id: i64,
    disabled: bool,
    now_ms: i64,
) -> CommandResult<()> {
    check_not_self(admin, worker_of(pool, user_id).await?)?;
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET disabled_at = ? WHERE id = ?")
        .bind(disabled.then_some(now_ms))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    if disabled {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets a new password hash (argon2id PHC) and ends the user's sessions.
pub async fn set_password(
    pool: &SqlitePool,
    admin: &Principal,
    user_id: i64,
    password_hash: &str,
) -> CommandResult<()> {
    check_not_self(admin, worker_of(pool, user_id).await?)?;
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a user: their claims are released (each one by the queue's
/// release command, so history, webhooks and the queue see an ordinary
/// forced release), then their sessions and sign-in go. Returns how many
/// claims were released. Safe to repeat after a crash half-way.
pub async fn delete(
    store: &Store,
    admin: &Principal,
    user_id: i64,
    now_ms: i64,
) -> CommandResult<usize> {
    let worker_id = worker_of(&store.writer, user_id).await?;
    check_not_self(admin, worker_id)?;
    let held: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM items WHERE claim_worker_id = ? ORDER BY id")
            .bind(worker_id)
            .fetch_all(&store.writer)
            .await?;
    for item_id in held.iter().copied() {
        // One writer hop per release, like `commands::queue::release`.
        let admin = admin.clone();
        store
            .run(move |tx| queue::release(tx, &admin, item_id, Some("user deleted"), None, now_ms))
            .await?;
    }
    let mut tx = store.writer.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(held.len())
}
