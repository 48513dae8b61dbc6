//! The admin's user commands (issue 14): create, disable, enable, reset a
//! password, delete. Each is one writer command; the rules (admins only,
//! never oneself, a name an agent holds is refused) are `domain::users`',
//! applied inside the command by `store::users`.

use crate::domain::Principal;
use crate::domain::users::{NewUser, check_may_manage_users};
use crate::store::{CommandResult, Store, users};

/// Creates a user (`password_hash` from `sessions::hash_password_blocking`).
pub async fn create(
    store: &Store,
    admin: &Principal,
    new: &NewUser,
    password_hash: String,
    now_ms: i64,
) -> CommandResult<i64> {
    check_may_manage_users(admin)?;
    let new = new.clone();
    store
        .run(move |tx| users::create(tx, &new, &password_hash, now_ms))
        .await
}

/// Disables (ending their sessions) or re-enables a user.
pub async fn set_disabled(
    store: &Store,
    admin: &Principal,
    user_id: i64,
    disabled: bool,
    now_ms: i64,
) -> CommandResult<()> {
    let admin = admin.clone();
    store
        .run(move |tx| users::set_disabled(tx, &admin, user_id, disabled, now_ms))
        .await
}

/// Gives a user a new password hash and ends their sessions.
pub async fn set_password(
    store: &Store,
    admin: &Principal,
    user_id: i64,
    password_hash: String,
) -> CommandResult<()> {
    let admin = admin.clone();
    store
        .run(move |tx| users::set_password(tx, &admin, user_id, &password_hash))
        .await
}

/// Deletes a user, releasing their claims (history stays); returns how
/// many claims were released. One command: all of it or none of it.
pub async fn delete(
    store: &Store,
    admin: &Principal,
    user_id: i64,
    now_ms: i64,
) -> CommandResult<usize> {
    let admin = admin.clone();
    store
        .run(move |tx| users::delete(tx, &admin, user_id, now_ms))
        .await
}
