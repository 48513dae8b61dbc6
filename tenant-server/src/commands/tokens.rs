//! Token commands, on the writer: mint (by an API caller, or with local
//! access to the data directory), revoke, the bootstrap admin and the
//! admin recovery. Secrets are generated here, off the writer thread; only
//! their hashes reach the database.

use crate::domain::Principal;
use crate::store::model::TokenInfo;
use crate::store::tokens::{self, Bootstrap, BootstrapError, NewToken, generate_secret};
use crate::store::{CommandResult, Store};

/// `POST /api/tokens`: minted under `domain::auth::check_may_mint`.
/// Returns the listing and the secret (shown once).
pub async fn create_by(
    store: &Store,
    minter: &Principal,
    token: &NewToken,
    now_ms: i64,
) -> CommandResult<(TokenInfo, String)> {
    mint(
        store,
        Some(minter.clone()),
        token,
        generate_secret(),
        now_ms,
    )
    .await
}

/// `taskharbor token create`: local access to the data directory, no minter.
pub async fn create(
    store: &Store,
    token: &NewToken,
    now_ms: i64,
) -> CommandResult<(TokenInfo, String)> {
    mint(store, None, token, generate_secret(), now_ms).await
}

async fn mint(
    store: &Store,
    minter: Option<Principal>,
    token: &NewToken,
    secret: String,
    now_ms: i64,
) -> CommandResult<(TokenInfo, String)> {
    let token = token.clone();
    store
        .run(move |tx| {
            let info = tokens::mint(tx, minter.as_ref(), &token, &secret, now_ms)?;
            Ok((info, secret.clone()))
        })
        .await
}

/// `DELETE /api/tokens/{id}`: once the revocation has committed, the auth
/// cache forgets the token before the answer is sent, so the very next
/// request with it is `401`.
pub async fn revoke(
    store: &Store,
    caller: &Principal,
    id: i64,
    now_ms: i64,
) -> CommandResult<TokenInfo> {
    let caller = caller.clone();
    let info = store
        .run(move |tx| tokens::revoke(tx, &caller, id, now_ms))
        .await?;
    store.auth.forget_token(info.id);
    Ok(info)
}

/// First start: if no working, unconfined admin token exists, create one
/// (from `configured` if given, else freshly generated).
pub async fn ensure_admin(
    store: &Store,
    configured: Option<&str>,
    now_ms: i64,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(value) = configured
        && !tokens::is_well_formed(value)
    {
        return Err(BootstrapError::Malformed);
    }
    let configured = configured.map(str::to_owned);
    let generated = generate_secret();
    Ok(store
        .run(move |tx| tokens::ensure_admin(tx, configured.as_deref(), &generated, now_ms))
        .await?)
}

/// `taskharbor admin recover`: a new admin token for the bootstrap worker.
pub async fn recover_admin(
    store: &Store,
    name: &str,
    now_ms: i64,
) -> CommandResult<(TokenInfo, String)> {
    let name = name.to_owned();
    let secret = generate_secret();
    store
        .run(move |tx| {
            let info = tokens::recover_admin(tx, &name, &secret, now_ms)?;
            Ok((info, secret.clone()))
        })
        .await
}
