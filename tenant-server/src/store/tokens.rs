//! Workers and API tokens: minting, authentication, listing, revocation,
//! and the bootstrap admin.
//!
//! Only the SHA-256 of a token is stored. Tokens carry 256 bits of
//! randomness, so a fast hash is as good as a slow one here and keeps
//! authentication off the request's critical path.

use super::auth_cache::CachedToken;
use super::error::{CommandResult, not_found};
use super::model::{TokenInfo, TokenRow};
use crate::domain::error::WorkerRef;
use crate::domain::validate::{self, FieldErrors};
use crate::domain::{DomainError, Principal, Scope, WorkerKind};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{SqliteConnection, SqlitePool};
use subtle::ConstantTimeEq;

pub const TOKEN_PREFIX: &str = "th_";

/// `th_` + 43 URL-safe characters (32 random bytes).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Whether `value` has the shape of a token (`th_` + ≥ 32 URL-safe chars).
pub fn is_well_formed(value: &str) -> bool {
    value.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() >= 32
            && rest.len() <= 200
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn display_prefix(secret: &str) -> String {
    secret.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// A validated request to mint a token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub worker_name: String,
    pub worker_kind: WorkerKind,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
    pub expires_at_ms: Option<i64>,
}

impl NewToken {
    pub fn parse(
        name: &str,
        worker_name: &str,
        worker_kind: WorkerKind,
        scopes: Vec<Scope>,
        board_id: Option<i64>,
        expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = validate::text(&mut errors, "name", name, 1, 100);
        let worker_name = validate::text(&mut errors, "worker.name", worker_name, 1, 100);
        if scopes.is_empty() {
            errors.add("scopes", "name at least one scope");
        }
        if expires_at_ms.is_some_and(|at| at <= now_ms) {
            errors.add("expires_at", "must be in the future");
        }
        errors.into_result()?;
        Ok(Self {
            name,
            worker_name,
            worker_kind,
            scopes,
            board_id,
            expires_at_ms,
        })
    }
}

/// Finds the worker by name or creates it; a name is one identity, so a
/// different kind for an existing name is refused.
async fn worker_for(
    conn: &mut SqliteConnection,
    name: &str,
    kind: WorkerKind,
    now_ms: i64,
) -> CommandResult<WorkerRef> {
    let existing: Option<(i64, String)> =
        sqlx::query_as("SELECT id, kind FROM workers WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    match existing {
        Some((id, existing_kind)) if existing_kind == kind.as_str() => Ok(WorkerRef {
            id,
            name: name.to_owned(),
            kind,
        }),
        Some((_, existing_kind)) => Err(DomainError::validation(
            "worker.kind",
            format!("worker {name:?} exists and is a {existing_kind}"),
        )
        .into()),
        None => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO workers (name, kind, created_at) VALUES (?, ?, ?) RETURNING id",
            )
            .bind(name)
            .bind(kind.as_str())
            .bind(now_ms)
            .fetch_one(&mut *conn)
            .await?;
            Ok(WorkerRef {
                id,
                name: name.to_owned(),
                kind,
            })
        }
    }
}

/// Whether `minter` may mint `token`: admin for anything; a board admin
/// only for its board and never above `board:admin`.
pub fn check_may_mint(minter: &Principal, token: &NewToken) -> Result<(), DomainError> {
    if minter.is_admin() {
        return Ok(());
    }
    let Some(board) = token.board_id else {
        return Err(DomainError::Forbidden(
            "only an admin may mint tokens that are not confined to a board".into(),
        ));
    };
    if !minter.is_board_admin(board) {
        return Err(DomainError::Forbidden(
            "you are not a board admin of that board".into(),
        ));
    }
    if token.scopes.iter().any(|s| *s > Scope::BoardAdmin) {
        return Err(DomainError::Forbidden(
            "a board admin cannot grant the admin scope".into(),
        ));
    }
    Ok(())
}

/// Mints a token; returns its listing and the secret (shown only now).
pub async fn create(
    pool: &SqlitePool,
    token: &NewToken,
    secret: Option<String>,
    now_ms: i64,
) -> CommandResult<(TokenInfo, String)> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(board) = token.board_id {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM boards WHERE id = ?")
            .bind(board)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(DomainError::validation("board_id", "no such board").into());
        }
    }
    let worker = worker_for(&mut tx, &token.worker_name, token.worker_kind, now_ms).await?;
    let secret = secret.unwrap_or_else(generate_secret);
    let scopes = serde_json::to_string(&token.scopes).unwrap_or_else(|_| "[]".into());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tokens (name, hash, prefix, worker_id, scopes, board_id, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&token.name)
    .bind(&hash_secret(&secret)[..])
    .bind(display_prefix(&secret))
    .bind(worker.id)
    .bind(scopes)
    .bind(token.board_id)
    .bind(token.expires_at_ms)
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let info = get(pool, id).await?.ok_or_else(|| not_found("token"))?;
    Ok((info, secret))
}

const SELECT_TOKEN: &str = "SELECT t.id, t.name, t.prefix, t.worker_id, w.name AS worker_name, w.kind AS worker_kind, \
     t.scopes, t.board_id, t.expires_at, t.created_at, t.last_used_at, t.revoked_at \
     FROM tokens t JOIN workers w ON w.id = t.worker_id";

pub async fn get(pool: &SqlitePool, id: i64) -> Result<Option<TokenInfo>, sqlx::Error> {
    let row: Option<TokenRow> = sqlx::query_as(&format!("{SELECT_TOKEN} WHERE t.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(TokenInfo::try_from).transpose()
}

/// Tokens the caller may manage: all for an admin, else its board's.
pub async fn list(pool: &SqlitePool, caller: &Principal) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let rows: Vec<TokenRow> = if caller.is_admin() {
        sqlx::query_as(&format!("{SELECT_TOKEN} ORDER BY t.id"))
            .fetch_all(pool)
            .await?
    } else {
        sqlx::query_as(&format!(
            "{SELECT_TOKEN} WHERE t.board_id = ? ORDER BY t.id"
        ))
        .bind(caller.board_id.unwrap_or(-1))
        .fetch_all(pool)
        .await?
    };
    rows.into_iter().map(TokenInfo::try_from).collect()
}

fn may_manage(caller: &Principal, token: &TokenInfo) -> bool {
    caller.is_admin()
        || token
            .board_id
            .is_some_and(|b| caller.is_board_admin(b) && caller.board_id.is_some())
}

/// Revokes a token: the very next request with it is `401` (the auth
/// cache forgets it once the revocation has committed).
pub async fn revoke(
    store: &super::Store,
    caller: &Principal,
    id: i64,
    now_ms: i64,
) -> CommandResult<TokenInfo> {
    let pool = &store.writer;
    let token = get(pool, id)
        .await?
        .filter(|t| may_manage(caller, t))
        .ok_or_else(|| not_found("token"))?;
    sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
        .bind(now_ms)
        .bind(token.id)
        .execute(pool)
        .await?;
    store.auth.forget_token(token.id);
    get(pool, id).await?.ok_or_else(|| not_found("token"))
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    id: i64,
    hash: Vec<u8>,
    worker_id: i64,
    worker_name: String,
    worker_kind: String,
    scopes: String,
    board_id: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

/// The principal a secret stands for, if it is known, unrevoked and
/// unexpired, with when it was last used (no cache: see `lookup`).
pub async fn authenticate(
    pool: &SqlitePool,
    secret: &str,
    now_ms: i64,
) -> Result<Option<(Principal, Option<i64>)>, sqlx::Error> {
    if !is_well_formed(secret) {
        return Ok(None);
    }
    Ok(lookup(pool, &hash_secret(secret), now_ms)
        .await?
        .map(|t| (t.principal, t.last_used_at)))
}

/// The working token whose secret hashes to `hash`, read from the
/// database (what the auth cache fills itself from).
pub async fn lookup(
    pool: &SqlitePool,
    hash: &[u8; 32],
    now_ms: i64,
) -> Result<Option<CachedToken>, sqlx::Error> {
    let row: Option<AuthRow> = sqlx::query_as(
        "SELECT t.id, t.hash, t.worker_id, w.name AS worker_name, w.kind AS worker_kind, t.scopes, t.board_id, \
         t.expires_at, t.revoked_at, t.last_used_at FROM tokens t JOIN workers w ON w.id = t.worker_id WHERE t.hash = ?",
    )
    .bind(&hash[..])
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    // The index lookup already matched; compare again in constant time so
    // no code path ever branches on a partial match of secret material.
    if !bool::from(row.hash.as_slice().ct_eq(&hash[..])) {
        return Ok(None);
    }
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|at| at <= now_ms) {
        return Ok(None);
    }
    let AuthRow {
        id: token_id,
        worker_id,
        worker_name,
        worker_kind,
        scopes,
        board_id,
        expires_at,
        last_used_at,
        ..
    } = row;
    let Some(kind) = WorkerKind::parse(&worker_kind) else {
        return Ok(None);
    };
    let scopes: Vec<Scope> = serde_json::from_str(&scopes).unwrap_or_default();
    Ok(Some(CachedToken {
        principal: Principal {
            token_id,
            worker_id,
            worker_name,
            worker_kind: kind,
            scopes,
            board_id,
        },
        expires_at,
        last_used_at,
    }))
}

/// Writes the token uses the auth cache noted, in one writer command.
pub fn record_use(tx: &super::writer::Tx<'_>, uses: &[(i64, i64)]) -> CommandResult<()> {
    let mut touch = tx.prepare_cached(
        "UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    )?;
    for &(token_id, at) in uses {
        touch.execute(rusqlite::params![at, token_id, at])?;
    }
    Ok(())
}

/// Whether a token still works (long-lived streams re-check this).
pub async fn still_valid(
    pool: &SqlitePool,
    token_id: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let row: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT revoked_at, expires_at FROM tokens WHERE id = ?")
            .bind(token_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some_and(|(revoked, expires)| {
        revoked.is_none() && expires.is_none_or(|at| at > now_ms)
    }))
}

/// What the bootstrap step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// An admin token already works; nothing was created.
    AdminExists,
    /// The configured token was installed.
    Installed,
    /// A new token was generated; print it once.
    Generated(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "TASKHARBOR_BOOTSTRAP_TOKEN must look like th_ followed by at least 32 URL-safe characters"
    )]
    Malformed,
    #[error(transparent)]
    Command(#[from] super::CommandError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// First start: if no working, unconfined admin token exists, create one
/// (from `configured` if given, else freshly generated).
pub async fn ensure_admin(
    pool: &SqlitePool,
    configured: Option<&str>,
    now_ms: i64,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(value) = configured
        && !is_well_formed(value)
    {
        return Err(BootstrapError::Malformed);
    }
    let admins: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tokens WHERE board_id IS NULL AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > ?) AND EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = 'admin')",
    )
    .bind(now_ms)
    .fetch_one(pool)
    .await?;
    if admins > 0 {
        return Ok(Bootstrap::AdminExists);
    }
    if let Some(value) = configured {
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM tokens WHERE hash = ?")
            .bind(&hash_secret(value)[..])
            .fetch_optional(pool)
            .await?;
        if known.is_some() {
            // The configured value was revoked or expired on purpose; do not resurrect it.
            return Ok(Bootstrap::AdminExists);
        }
    }
    let token = NewToken {
        name: "bootstrap".into(),
        worker_name: "admin".into(),
        worker_kind: WorkerKind::Human,
        scopes: vec![Scope::Admin],
        board_id: None,
        expires_at_ms: None,
    };
    let (_, secret) = create(pool, &token, configured.map(str::to_owned), now_ms).await?;
    Ok(if configured.is_some() {
        Bootstrap::Installed
    } else {
        Bootstrap::Generated(secret)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_well_formed_and_distinct() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(is_well_formed(&a), "{a}");
        assert_eq!(a.len(), 3 + 43);
        assert_ne!(a, b);
        assert!(!is_well_formed("th_short"));
        assert!(!is_well_formed("xx_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!is_well_formed("th_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/+"));
    }
}
