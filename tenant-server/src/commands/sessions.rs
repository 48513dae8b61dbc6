//! Dashboard sign-in as commands, for every edge that accepts a session:
//! the dashboard's pages and forms, and the REST API (a signed-in
//! browser calls `/api` with its cookie).
//!
//! A session id is 256 random bits held only by the browser; the database
//! keeps its SHA-256. Each session has a synchronizer CSRF token that
//! every state change must present. Authentication is a read (reader
//! pool); its idle-timer renewal is noted in memory and written at most
//! once a minute per session, batched, by one writer command
//! ([`flush_seen`]). Starting, ending and setting up are writer commands.
//! The lifetime rules are `domain::users`'.

use crate::domain::DomainError;
use crate::domain::users::{ABSOLUTE_MS, IDLE_MS, NewUser, User, session_alive};
use crate::store::sessions::{self, Noted, SessionHash};
use crate::store::{CommandResult, Store, users};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// How long idle-timer renewals gather before one write records them.
const SEEN_WINDOW: Duration = Duration::from_millis(100);

/// A live session.
#[derive(Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

/// A session just started: the cookie value (its id) and its CSRF token.
#[derive(Clone)]
pub struct Started {
    pub id: String,
    pub csrf: String,
}

// Secrets never reach logs: `Debug` shows who, not the tokens.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("csrf", &"[redacted]")
            .finish()
    }
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Started { id: [redacted], csrf: [redacted] }")
    }
}

/// 256 random bits, URL-safe.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_id(id: &str) -> SessionHash {
    Sha256::digest(id.as_bytes()).into()
}

/// Whether two secrets are equal, in constant time.
pub fn secrets_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// `403` unless `given` is the session's CSRF token.
pub fn check_csrf(session: &Session, given: &str) -> Result<(), DomainError> {
    if secrets_match(&session.csrf, given) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(
            "this request needs the session's CSRF token in X-CSRF-Token".into(),
        ))
    }
}

/// An argon2id PHC string for `password` (slow on purpose: see
/// [`hash_password_blocking`]).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the hashing task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs argon2 on the blocking pool, off the async threads.
pub async fn hash_password_blocking(password: String) -> Result<String, PasswordHashError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| PasswordHashError::Hash(e.to_string()))
}

async fn verify_password_blocking(phc: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&phc, &password))
        .await
        .unwrap_or(false)
}

/// A password hash to verify against when the username is unknown, so a
/// wrong username costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        hash_password("decoy password, never valid").unwrap_or_default()
    });
    &DECOY
}

/// The live session a cookie value names, if any. Notes the use; the
/// idle timer is renewed in the background at most once a minute.
pub async fn authenticate(store: &Store, id: &str, now_ms: i64) -> CommandResult<Option<Session>> {
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let hash = hash_id(id);
    let Some(row) = sessions::find(&store.reader, &hash).await? else {
        return Ok(None);
    };
    if !session_alive(row.last_seen_at, row.expires_at, now_ms) {
        return Ok(None);
    }
    if store
        .auth
        .sessions_seen
        .note(&hash, row.last_seen_at, now_ms)
        == Noted::ScheduleFlush
    {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SEEN_WINDOW).await;
            if let Err(error) = flush_seen(&store).await {
                crate::telemetry::log_error("could not renew sessions", &error);
            }
        });
    }
    Ok(Some(Session {
        user: row.user(),
        csrf: row.csrf_token,
    }))
}

/// Writes the idle-timer renewals noted so far, in one command; returns
/// how many sessions it renewed.
pub async fn flush_seen(store: &Store) -> CommandResult<usize> {
    let seen = store.auth.sessions_seen.take_pending();
    if seen.is_empty() {
        return Ok(0);
    }
    let count = seen.len();
    store.run(move |tx| sessions::touch(tx, &seen)).await?;
    Ok(count)
}

/// Starts a session for `user_id`, sweeping everyone's ended sessions on
/// the way (sign-in is the rare write path).
pub async fn start(store: &Store, user_id: i64, now_ms: i64) -> CommandResult<Started> {
    let started = Started {
        id: random_secret(),
        csrf: random_secret(),
    };
    let (hash, csrf) = (hash_id(&started.id), started.csrf.clone());
    store
        .run(move |tx| {
            sessions::insert(tx, &hash, user_id, &csrf, now_ms, now_ms + ABSOLUTE_MS)?;
            sessions::purge_ended(tx, now_ms, now_ms - IDLE_MS)?;
            Ok(())
        })
        .await?;
    Ok(started)
}

/// Signs in with a username and password: a new session, or `None` when
/// the pair is wrong (or the user disabled). An unknown name costs an
/// argon2 verification too, so timing tells nothing.
pub async fn login(
    store: &Store,
    username: &str,
    password: &str,
    now_ms: i64,
) -> CommandResult<Option<Started>> {
    let found = users::credentials(&store.reader, username).await?;
    let (user_id, hash) = match found {
        Some(c) => (Some(c.id), c.password_hash),
        None => (None, decoy_hash().to_owned()),
    };
    let valid = verify_password_blocking(hash, password.to_owned()).await;
    match user_id {
        Some(id) if valid => Ok(Some(start(store, id, now_ms).await?)),
        _ => Ok(None),
    }
}

/// Signs out: the session with this cookie value ends.
pub async fn end(store: &Store, id: &str) -> CommandResult<()> {
    let hash = hash_id(id);
    store
        .run(move |tx| sessions::delete(tx, &hash).map(|_| ()))
        .await
}

/// Creates the first user (an admin, checked by the caller against an
/// admin token) and signs them in, in one command: refused once any user
/// exists, so two racing setups cannot both succeed.
pub async fn set_up_first_user(
    store: &Store,
    new: &NewUser,
    password_hash: String,
    now_ms: i64,
) -> CommandResult<Started> {
    let started = Started {
        id: random_secret(),
        csrf: random_secret(),
    };
    let (hash, csrf, new) = (hash_id(&started.id), started.csrf.clone(), new.clone());
    store
        .run(move |tx| {
            if users::count_in(tx)? > 0 {
                return Err(DomainError::Forbidden("setup is done; sign in instead".into()).into());
            }
            let user_id = users::create(tx, &new, &password_hash, now_ms)?;
            sessions::insert(tx, &hash, user_id, &csrf, now_ms, now_ms + ABSOLUTE_MS)?;
            Ok(())
        })
        .await?;
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "wrong horse battery"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }

    #[test]
    fn csrf_tokens_must_match_exactly_and_not_be_empty() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", ""));
        assert!(!secrets_match("", ""));
    }
}
