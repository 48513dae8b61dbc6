//! Workers and API tokens: minting, revocation and the bootstrap admin
//! (on the writer, executing `domain::auth`'s decisions), authentication
//! and listing (reads).
//!
//! Only the SHA-256 of a token is stored. Tokens carry 256 bits of
//! randomness, so a fast hash is as good as a slow one here and keeps
//! authentication off the request's critical path.

use super::auth_cache::CachedToken;
use super::error::{CommandResult, not_found};
use super::model::{TokenInfo, TokenRow};
use super::writer::Tx;
use crate::domain::auth::{KnownWorker, may_manage_token, plan_mint};
use crate::domain::{Principal, Scope, WorkerKind};
use base64::Engine;
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use subtle::ConstantTimeEq;

pub use crate::domain::auth::NewToken;

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

/// Mints a token (on the writer), executing `domain::auth::plan_mint`:
/// the minter's right, the board and the worker are read in the same
/// transaction as the insert. `minter: None` is local access to the data
/// directory (the CLI, the bootstrap). Returns the token's listing.
pub(crate) fn mint(
    tx: &Tx<'_>,
    minter: Option<&Principal>,
    token: &NewToken,
    secret: &str,
    now_ms: i64,
) -> CommandResult<TokenInfo> {
    let known = tx
        .prepare_cached("SELECT id, kind, home_board_id FROM workers WHERE name = ?")?
        .query_row([&token.worker_name], |r| {
            Ok(KnownWorker {
                id: r.get(0)?,
                kind: WorkerKind::parse(&r.get::<_, String>(1)?),
                home_board: r.get(2)?,
            })
        })
        .optional()?;
    let board_exists = match token.board_id {
        Some(board) => tx
            .prepare_cached("SELECT 1 FROM boards WHERE id = ?")?
            .query_row([board], |_| Ok(()))
            .optional()?
            .is_some(),
        None => false,
    };
    let plan = plan_mint(minter, token, board_exists, known)?;
    let worker_id = match plan.worker {
        Some(id) => id,
        None => tx
            .prepare_cached("INSERT INTO workers (name, kind, created_at) VALUES (?, ?, ?)")?
            .insert(params![
                token.worker_name,
                token.worker_kind.as_str(),
                now_ms
            ])?,
    };
    if let Some(board) = plan.home_board {
        tx.prepare_cached(
            "UPDATE workers SET home_board_id = ? WHERE id = ? AND home_board_id IS NULL",
        )?
        .execute(params![board, worker_id])?;
    }
    let scopes = serde_json::to_string(&token.scopes).unwrap_or_else(|_| "[]".into());
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO tokens (name, hash, prefix, worker_id, scopes, board_id, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .insert(params![
                token.name,
                &hash_secret(secret)[..],
                display_prefix(secret),
                worker_id,
                scopes,
                token.board_id,
                token.expires_at_ms,
                now_ms
            ])?;
    load_info(tx, id)?.ok_or_else(|| not_found("token"))
}

const SELECT_TOKEN: &str = "SELECT t.id, t.name, t.prefix, t.worker_id, w.name AS worker_name, w.kind AS worker_kind, \
     t.scopes, t.board_id, t.expires_at, t.created_at, t.last_used_at, t.revoked_at \
     FROM tokens t JOIN workers w ON w.id = t.worker_id";

impl TokenRow {
    /// The same columns as `SELECT_TOKEN`, read on the writer.
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            prefix: r.get(2)?,
            worker_id: r.get(3)?,
            worker_name: r.get(4)?,
            worker_kind: r.get(5)?,
            scopes: r.get(6)?,
            board_id: r.get(7)?,
            expires_at: r.get(8)?,
            created_at: r.get(9)?,
            last_used_at: r.get(10)?,
            revoked_at: r.get(11)?,
        })
    }
}

fn load_info(tx: &Tx<'_>, id: i64) -> CommandResult<Option<TokenInfo>> {
    let row = tx
        .prepare_cached(&format!("{SELECT_TOKEN} WHERE t.id = ?"))?
        .query_row([id], TokenRow::from_sqlite)
        .optional()?;
    Ok(row.map(TokenInfo::try_from).transpose()?)
}

/// Tokens the caller may manage (`domain::auth::may_manage_token`; the
/// query only narrows to the caller's board first).
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
    rows.into_iter()
        .filter(|r| may_manage_token(caller, r.board_id))
        .map(TokenInfo::try_from)
        .collect()
}

/// Revokes a token (on the writer). The auth cache forgets it once this
/// has committed (`commands::tokens::revoke`), so the very next request
/// with it is `401`.
pub(crate) fn revoke(
    tx: &Tx<'_>,
    caller: &Principal,
    id: i64,
    now_ms: i64,
) -> CommandResult<TokenInfo> {
    load_info(tx, id)?
        .filter(|t| may_manage_token(caller, t.board_id))
        .ok_or_else(|| not_found("token"))?;
    tx.prepare_cached("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")?
        .execute(params![now_ms, id])?;
    // Live event streams of the token re-check it when woken.
    tx.mark_changed();
    load_info(tx, id)?.ok_or_else(|| not_found("token"))
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
}

/// First start (on the writer): if no working, unconfined admin token
/// exists, install `configured` or else `generated`. The caller checked
/// `configured` is well formed.
pub(crate) fn ensure_admin(
    tx: &Tx<'_>,
    configured: Option<&str>,
    generated: &str,
    now_ms: i64,
) -> CommandResult<Bootstrap> {
    let admins: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM tokens WHERE board_id IS NULL AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?) AND EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = 'admin')",
        )?
        .query_row([now_ms], |r| r.get(0))?;
    if admins > 0 {
        return Ok(Bootstrap::AdminExists);
    }
    if let Some(value) = configured {
        let known = tx
            .prepare_cached("SELECT id FROM tokens WHERE hash = ?")?
            .query_row([&hash_secret(value)[..]], |r| r.get::<_, i64>(0))
            .optional()?;
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
    mint(tx, None, &token, configured.unwrap_or(generated), now_ms)?;
    Ok(match configured {
        Some(_) => Bootstrap::Installed,
        None => Bootstrap::Generated(generated.to_owned()),
    })
}

/// `taskharbor admin recover` (on the writer): a new admin token for the
/// worker the first admin token acted as (the bootstrap worker), for
/// whoever has local access to the data directory and lost every admin token.
pub(crate) fn recover_admin(
    tx: &Tx<'_>,
    name: &str,
    secret: &str,
    now_ms: i64,
) -> CommandResult<TokenInfo> {
    let first = tx
        .prepare_cached(
            "SELECT w.name, w.kind FROM tokens t JOIN workers w ON w.id = t.worker_id \
             WHERE t.board_id IS NULL AND EXISTS (SELECT 1 FROM json_each(t.scopes) WHERE value = 'admin') \
             ORDER BY t.id LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    let (worker_name, worker_kind) = first
        .and_then(|(name, kind)| WorkerKind::parse(&kind).map(|kind| (name, kind)))
        .unwrap_or_else(|| ("admin".to_owned(), WorkerKind::Human));
    let token = NewToken::parse(
        name,
        &worker_name,
        worker_kind,
        vec![Scope::Admin],
        None,
        None,
        now_ms,
    )?;
    mint(tx, None, &token, secret, now_ms)
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
