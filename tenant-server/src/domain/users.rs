//! Dashboard users and their sessions, as rules: what a valid new user
//! is, when a session is alive, when its idle timer is worth renewing,
//! and what an admin may do to other users. Pure: the clock is a
//! parameter and nothing here touches the database.

use super::auth::{Principal, Scope, WorkerKind};
use super::error::DomainError;
use super::validate::FieldErrors;
use serde::Serialize;

/// A session ends after this long without a request…
pub const IDLE_MS: i64 = 12 * 3600 * 1000;
/// …or this long after sign-in, whichever comes first.
pub const ABSOLUTE_MS: i64 = 7 * 24 * 3600 * 1000;
/// `last_seen_at` is written at most this often per session, so a
/// signed-in browser's requests stay reads.
pub const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// Whether a session last seen at `last_seen_at` and ending at
/// `expires_at` still signs its browser in at `now_ms`.
pub fn session_alive(last_seen_at: i64, expires_at: i64, now_ms: i64) -> bool {
    expires_at > now_ms && last_seen_at + IDLE_MS > now_ms
}

/// Whether a session's idle timer should be renewed (once a minute).
pub fn touch_due(last_seen_at: i64, now_ms: i64) -> bool {
    last_seen_at + TOUCH_EVERY_MS < now_ms
}

/// A signed-in human.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub worker_id: i64,
    pub worker_name: String,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
}

impl User {
    /// The user as an API caller: their human worker, their scopes.
    /// `token_id` is the negated user id, so it never names a real token.
    pub fn principal(&self) -> Principal {
        Principal {
            token_id: -self.id,
            worker_id: self.worker_id,
            worker_name: self.worker_name.clone(),
            worker_kind: WorkerKind::Human,
            scopes: self.scopes.clone(),
            board_id: self.board_id,
        }
    }
}

/// A validated request to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
}

/// Shortest password a user may choose (and an admin may set).
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Whether `password` is long enough (and not absurdly long).
pub fn password_ok(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_CHARS && password.len() <= 1024
}

impl NewUser {
    pub fn parse(
        username: &str,
        password: &str,
        scope: &str,
        board_id: Option<i64>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let username = username.trim();
        if username.is_empty()
            || username.len() > 64
            || !username
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            errors.add(
                "username",
                "must be 1 to 64 letters, digits, '-', '_', '.' or '@'",
            );
        }
        if !password_ok(password) {
            errors.add("password", "must be at least 10 characters");
        }
        let scope = Scope::parse(scope);
        if scope.is_none() {
            errors.add(
                "scope",
                "must be queue:read, queue:write, board:admin or admin",
            );
        }
        errors.into_result()?;
        Ok(Self {
            username: username.to_owned(),
            password: password.to_owned(),
            scopes: scope.into_iter().collect(),
            board_id,
        })
    }
}

/// Only unconfined admins create and manage dashboard users.
pub fn check_may_manage_users(caller: &Principal) -> Result<(), DomainError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only admins manage users".into()))
    }
}

/// Admins disable, enable, delete and reset other users; nobody locks
/// themselves out by accident.
pub fn check_user_action(admin: &Principal, target_worker_id: i64) -> Result<(), DomainError> {
    check_may_manage_users(admin)?;
    if admin.worker_id == target_worker_id {
        return Err(DomainError::Forbidden(
            "you cannot disable, delete or reset yourself here".into(),
        ));
    }
    Ok(())
}

/// The name a new user's human worker takes must not belong to an agent.
pub fn check_worker_for_user(kind: Option<WorkerKind>) -> Result<(), DomainError> {
    match kind {
        Some(WorkerKind::Agent) => Err(DomainError::validation(
            "username",
            "is the name of an agent worker",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_users_need_a_sane_name_a_long_password_and_a_known_scope() {
        assert!(NewUser::parse("ada", "long enough pw", "admin", None).is_ok());
        assert!(NewUser::parse("a b", "long enough pw", "admin", None).is_err());
        assert!(NewUser::parse("ada", "short", "admin", None).is_err());
        assert!(NewUser::parse("ada", "long enough pw", "root", None).is_err());
    }

    #[test]
    fn a_session_dies_when_idle_or_old_and_is_renewed_once_a_minute() {
        assert!(session_alive(0, ABSOLUTE_MS, IDLE_MS - 1));
        assert!(!session_alive(0, ABSOLUTE_MS, IDLE_MS));
        assert!(!session_alive(ABSOLUTE_MS - 1, ABSOLUTE_MS, ABSOLUTE_MS));
        assert!(!touch_due(1_000, 1_000 + TOUCH_EVERY_MS));
        assert!(touch_due(1_000, 1_001 + TOUCH_EVERY_MS));
    }

    #[test]
    fn admins_act_on_others_only_and_only_admins_act() {
        let admin = Principal {
            token_id: -1,
            worker_id: 7,
            worker_name: "root".into(),
            worker_kind: WorkerKind::Human,
            scopes: vec![Scope::Admin],
            board_id: None,
        };
        assert!(check_user_action(&admin, 8).is_ok());
        assert!(check_user_action(&admin, 7).is_err());
        let reader = Principal {
            scopes: vec![Scope::QueueRead],
            ..admin
        };
        assert!(check_user_action(&reader, 8).is_err());
    }

    #[test]
    fn a_user_cannot_take_an_agents_name() {
        assert!(check_worker_for_user(None).is_ok());
        assert!(check_worker_for_user(Some(WorkerKind::Human)).is_ok());
        assert!(check_worker_for_user(Some(WorkerKind::Agent)).is_err());
    }
}
