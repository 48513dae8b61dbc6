//! The token cache: authentication without a database hop on the hot path.
//!
//! Keyed by the SHA-256 of the secret (never the secret itself). A hit
//! answers from memory while the token's expiry has not passed; a miss
//! reads the database and fills the cache. Revocation commits first and
//! then calls [`AuthCache::forget_token`], before its HTTP answer is sent,
//! so the very next request with that token misses and reads the revoked
//! row. A read that raced the revocation cannot put the stale entry back:
//! every fill carries the generation it started in, and `forget_token`
//! bumps the generation.
//!
//! Use is recorded in batches: a hit notes the time at most once a minute
//! per token in memory; `delivery::token_use` writes what accumulated in
//! one writer command.

use crate::domain::Principal;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Beyond this many tokens in memory the cache starts over (bounds memory
/// against a flood of distinct valid tokens; misses just read the database).
const MAX_ENTRIES: usize = 10_000;

/// How often use of one token is written at most.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// A token as authentication needs it.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub principal: Principal,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    entries: HashMap<[u8; 32], CachedToken>,
    /// token id → when it was last used, not yet written.
    pending_use: HashMap<i64, i64>,
}

#[derive(Debug, Default)]
pub struct AuthCache {
    inner: Mutex<Inner>,
    /// Wakes the use recorder when `pending_use` gains an entry.
    pub use_pending: Notify,
    /// Dashboard sessions seen, for their batched idle-timer renewal.
    pub sessions_seen: super::sessions::SeenNotes,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind: usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller for `hash` if cached and unexpired at `now_ms`; notes its use.
    pub fn get(&self, hash: &[u8; 32], now_ms: i64) -> Option<Principal> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(hash)?;
        if entry.expires_at.is_some_and(|at| at <= now_ms) {
            inner.entries.remove(hash);
            return None;
        }
        let principal = entry.principal.clone();
        let due = entry
            .last_used_at
            .is_none_or(|at| at < now_ms - TOUCH_EVERY_MS);
        if due {
            entry.last_used_at = Some(now_ms);
            inner.pending_use.insert(principal.token_id, now_ms);
            drop(inner);
            self.use_pending.notify_one();
        }
        Some(principal)
    }

    /// The generation a database read starts in; pass it to [`Self::fill`].
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches what the database said, unless a revocation happened since
    /// `generation`; notes the use when due.
    pub fn fill(&self, hash: [u8; 32], generation: u64, mut token: CachedToken, now_ms: i64) {
        let mut inner = self.lock();
        let due = token
            .last_used_at
            .is_none_or(|at| at < now_ms - TOUCH_EVERY_MS);
        if due {
            token.last_used_at = Some(now_ms);
            inner.pending_use.insert(token.principal.token_id, now_ms);
        }
        if inner.generation == generation {
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
            inner.entries.insert(hash, token);
        }
        drop(inner);
        if due {
            self.use_pending.notify_one();
        }
    }

    /// Drops a revoked token; call after the revocation committed.
    pub fn forget_token(&self, token_id: i64) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner
            .entries
            .retain(|_, t| t.principal.token_id != token_id);
        inner.pending_use.remove(&token_id);
    }

    /// Takes the uses noted since the last call, as (token id, time).
    pub fn take_pending_use(&self) -> Vec<(i64, i64)> {
        self.lock().pending_use.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Scope, WorkerKind};

    fn token(id: i64, expires_at: Option<i64>) -> CachedToken {
        CachedToken {
            principal: Principal {
                token_id: id,
                worker_id: 1,
                worker_name: "w".into(),
                worker_kind: WorkerKind::Agent,
                scopes: vec![Scope::QueueWrite],
                board_id: None,
            },
            expires_at,
            last_used_at: None,
        }
    }

    #[test]
    fn a_forgotten_token_misses_and_a_fill_that_raced_the_revocation_is_dropped() {
        let cache = AuthCache::default();
        let started = cache.generation();
        cache.fill([1; 32], started, token(7, None), 1_000);
        assert_eq!(cache.get(&[1; 32], 1_001).map(|p| p.token_id), Some(7));
        let racing = cache.generation();
        cache.forget_token(7);
        assert!(cache.get(&[1; 32], 1_002).is_none());
        cache.fill([1; 32], racing, token(7, None), 1_003);
        assert!(cache.get(&[1; 32], 1_004).is_none(), "stale fill ignored");
    }

    #[test]
    fn an_expired_entry_misses() {
        let cache = AuthCache::default();
        cache.fill([2; 32], cache.generation(), token(3, Some(2_000)), 1_000);
        assert!(cache.get(&[2; 32], 1_999).is_some());
        assert!(cache.get(&[2; 32], 2_000).is_none());
    }

    #[test]
    fn use_is_noted_once_a_minute_per_token() {
        let cache = AuthCache::default();
        cache.fill([3; 32], cache.generation(), token(5, None), 1_000);
        assert_eq!(cache.take_pending_use(), vec![(5, 1_000)]);
        cache.get(&[3; 32], 2_000);
        assert!(cache.take_pending_use().is_empty());
        cache.get(&[3; 32], 1_000 + TOUCH_EVERY_MS + 1);
        assert_eq!(cache.take_pending_use(), vec![(5, 61_001)]);
    }
}
