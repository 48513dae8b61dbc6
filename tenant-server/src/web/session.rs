//! Dashboard sessions as an API credential: a signed-in human's browser
//! calls the same `/api` routes as agents, authenticated by its session
//! cookie, with CSRF protection on every state change.
//!
//! Users sign in with a username and an argon2id password. A session id is
//! 256 random bits held only by the browser (`HttpOnly`, `SameSite=Lax`,
//! `Secure` behind https); the database keeps its SHA-256, like tokens.
//! Each session has a synchronizer CSRF token: forms carry it in a hidden
//! field, `fetch` sends it as `X-CSRF-Token`. Sessions end after 12 hours
//! idle or 7 days in all, or at sign-out.

use crate::AppState;
use crate::api::error::ApiError;
use crate::domain::{DomainError, Principal, Scope, WorkerKind};
use crate::store::{self, CommandError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "th_session";
/// A pre-session cookie pairing the sign-in and setup forms with their
/// hidden field (double submit), so a foreign site cannot sign a victim in.
pub const FORM_COOKIE: &str = "th_form";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const IDLE_MS: i64 = 12 * 3600 * 1000;
pub const ABSOLUTE_MS: i64 = 7 * 24 * 3600 * 1000;
/// `last_seen_at` is written at most this often, so reads stay reads.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// 256 random bits, URL-safe.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_id(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Whether two secrets are equal, in constant time.
pub fn secrets_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// An argon2id PHC string for `password` (slow on purpose: run it off the
/// async threads).
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

/// Runs argon2 on the blocking pool.
pub async fn hash_password_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::Internal(e.to_string().into()))
}

pub async fn verify_password_blocking(phc: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&phc, &password))
        .await
        .unwrap_or(false)
}

/// The value of cookie `name` in the request, if present.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value with the dashboard's flags.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if state.config.base_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let same_site = if name == FORM_COOKIE { "Strict" } else { "Lax" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite={same_site}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("th_invalid=1"))
}

/// A signed-in human.
#[derive(Debug, Clone, serde::Serialize)]
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

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_id: i64,
    username: String,
    worker_id: i64,
    worker_name: String,
    scopes: String,
    board_id: Option<i64>,
    csrf_token: String,
    last_seen_at: i64,
    expires_at: i64,
}

/// The live session a cookie value names, if any; renews its idle timer.
pub async fn load(state: &AppState, id: &str, now_ms: i64) -> Result<Option<Session>, sqlx::Error> {
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let hash = hash_id(id);
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT u.id AS user_id, u.username, u.worker_id, w.name AS worker_name, u.scopes, u.board_id, \
         s.csrf_token, s.last_seen_at, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
         JOIN workers w ON w.id = u.worker_id WHERE s.id_hash = ? AND u.disabled_at IS NULL",
    )
    .bind(&hash[..])
    .fetch_optional(&state.store.reader)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.expires_at <= now_ms || row.last_seen_at + IDLE_MS <= now_ms {
        return Ok(None);
    }
    if row.last_seen_at + TOUCH_EVERY_MS < now_ms {
        let writer = state.store.writer.clone();
        tokio::spawn(async move {
            let touched = sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?")
                .bind(now_ms)
                .bind(&hash[..])
                .execute(&writer)
                .await;
            if let Err(error) = touched {
                tracing::warn!(%error, "could not renew a session");
            }
        });
    }
    Ok(Some(Session {
        user: User {
            id: row.user_id,
            username: row.username,
            worker_id: row.worker_id,
            worker_name: row.worker_name,
            scopes: serde_json::from_str(&row.scopes).unwrap_or_default(),
            board_id: row.board_id,
        },
        csrf: row.csrf_token,
    }))
}

/// The session of a request's cookie, if it carries a live one.
pub async fn from_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, sqlx::Error> {
    match cookie(headers, SESSION_COOKIE) {
        Some(id) => load(state, id, store::now_ms()).await,
        None => Ok(None),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The principal of a request's session cookie, if it carries a live one.
/// Mutating methods must also carry the session's CSRF token in
/// `X-CSRF-Token`, else `403 forbidden`.
pub async fn authenticate_cookie(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<Principal>, ApiError> {
    let Some(session) = from_headers(state, headers).await? else {
        return Ok(None);
    };
    let principal = session.user.principal();
    // Same per-caller budget as tokens (a session's bucket is its user's).
    state
        .rate_limiter
        .check(principal.token_id, state.config.rate_limit_per_second)
        .map_err(|retry_after_seconds| ApiError::RateLimited {
            retry_after_seconds,
        })?;
    if !is_safe(method) {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secrets_match(&session.csrf, given) {
            return Err(ApiError::Forbidden(
                "this request needs the session's CSRF token in X-CSRF-Token".into(),
            ));
        }
    }
    Ok(Some(principal))
}

/// Starts a session; returns the cookie value (the id) and the CSRF token.
pub async fn create(
    pool: &SqlitePool,
    user_id: i64,
    now_ms: i64,
) -> Result<(String, String), sqlx::Error> {
    let id = random_secret();
    let csrf = random_secret();
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&hash_id(&id)[..])
    .bind(user_id)
    .bind(&csrf)
    .bind(now_ms)
    .bind(now_ms)
    .bind(now_ms + ABSOLUTE_MS)
    .execute(pool)
    .await?;
    // Expired sessions of anyone are swept here, on the rare write path.
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")
        .bind(now_ms)
        .bind(now_ms - IDLE_MS)
        .execute(pool)
        .await?;
    Ok((id, csrf))
}

pub async fn delete(pool: &SqlitePool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
        .bind(&hash_id(id)[..])
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn count_users(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

/// A validated request to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
}

impl NewUser {
    pub fn parse(
        username: &str,
        password: &str,
        scope: &str,
        board_id: Option<i64>,
    ) -> Result<Self, crate::domain::FieldErrors> {
        let mut errors = crate::domain::FieldErrors::new();
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
        if password.chars().count() < 10 || password.len() > 1024 {
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

/// Creates the user and links it to the human worker of the same name
/// (created if new; a name held by an agent is refused).
pub async fn create_user(
    pool: &SqlitePool,
    new: &NewUser,
    password_hash: &str,
    now_ms: i64,
) -> Result<i64, CommandError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(board) = new.board_id {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM boards WHERE id = ?")
            .bind(board)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(DomainError::validation("board_id", "no such board").into());
        }
    }
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
        .bind(&new.username)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(DomainError::validation("username", "is taken").into());
    }
    let worker: Option<(i64, String)> =
        sqlx::query_as("SELECT id, kind FROM workers WHERE name = ?")
            .bind(&new.username)
            .fetch_optional(&mut *tx)
            .await?;
    let worker_id =
        match worker {
            Some((id, kind)) if kind == "human" => id,
            Some(_) => {
                return Err(
                    DomainError::validation("username", "is the name of an agent worker").into(),
                );
            }
            None => sqlx::query_scalar(
                "INSERT INTO workers (name, kind, created_at) VALUES (?, 'human', ?) RETURNING id",
            )
            .bind(&new.username)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?,
        };
    let linked: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE worker_id = ?")
        .bind(worker_id)
        .fetch_optional(&mut *tx)
        .await?;
    if linked.is_some() {
        return Err(DomainError::validation("username", "is taken").into());
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, worker_id, scopes, board_id, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&new.username)
    .bind(password_hash)
    .bind(worker_id)
    .bind(serde_json::to_string(&new.scopes).unwrap_or_else(|_| "[]".into()))
    .bind(new.board_id)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A user's id and password hash, by username (case-insensitive).
pub async fn credentials(
    pool: &SqlitePool,
    username: &str,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, password_hash FROM users WHERE username = ? AND disabled_at IS NULL")
        .bind(username.trim())
        .fetch_optional(pool)
        .await
}

/// A user as listed on the users page.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct UserListing {
    pub id: i64,
    pub username: String,
    pub scopes: String,
    pub board_id: Option<i64>,
    pub created_at: i64,
    pub sessions: i64,
}

pub async fn list_users(pool: &SqlitePool) -> Result<Vec<UserListing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.username, u.scopes, u.board_id, u.created_at, \
         (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id) AS sessions FROM users u ORDER BY u.username",
    )
    .fetch_all(pool)
    .await
}

/// Failed sign-ins per username; after [`LoginThrottle::MAX_FAILURES`]
/// within the window, that username is refused (429) until it passes.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, i64)>>,
}

impl LoginThrottle {
    pub const MAX_FAILURES: u32 = 5;
    pub const WINDOW_MS: i64 = 15 * 60 * 1000;

    /// The process-wide throttle. Keys carry the database path, so two
    /// servers in one process (tests) never share counts.
    pub fn global() -> &'static Self {
        static THROTTLE: std::sync::LazyLock<LoginThrottle> =
            std::sync::LazyLock::new(LoginThrottle::default);
        &THROTTLE
    }

    fn key(state: &AppState, username: &str) -> String {
        format!(
            "{}\0{}",
            state.store.path().display(),
            username.trim().to_lowercase()
        )
    }

    /// `Err(seconds to wait)` while the username is locked out.
    pub fn check(&self, state: &AppState, username: &str, now_ms: i64) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&Self::key(state, username)) {
            Some((count, since))
                if *count >= Self::MAX_FAILURES && now_ms - since < Self::WINDOW_MS =>
            {
                Err(((Self::WINDOW_MS - (now_ms - since)) / 1000).max(1) as u64)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, state: &AppState, username: &str, now_ms: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| now_ms - *since < Self::WINDOW_MS);
        }
        let entry = failures
            .entry(Self::key(state, username))
            .or_insert((0, now_ms));
        if now_ms - entry.1 >= Self::WINDOW_MS {
            *entry = (0, now_ms);
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, state: &AppState, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&Self::key(state, username));
    }
}

/// A password hash to verify against when the username is unknown, so a
/// wrong username costs as much time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        hash_password("decoy password, never valid").unwrap_or_default()
    });
    &DECOY
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
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; th_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly_and_not_be_empty() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", ""));
        assert!(!secrets_match("", ""));
    }

    #[test]
    fn new_users_need_a_sane_name_a_long_password_and_a_known_scope() {
        assert!(NewUser::parse("ada", "long enough pw", "admin", None).is_ok());
        assert!(NewUser::parse("a b", "long enough pw", "admin", None).is_err());
        assert!(NewUser::parse("ada", "short", "admin", None).is_err());
        assert!(NewUser::parse("ada", "long enough pw", "root", None).is_err());
    }
}
