//! The dashboard's side of sessions: the cookies it sets, the signed-in
//! user of a page request, the pre-session form token, and sign-in
//! throttling. Sessions themselves (start, end, authenticate, the CSRF
//! rule, passwords) are `commands::sessions`, which the REST API calls
//! too; users and session lifetimes are `domain::users`.
//!
//! Users sign in with a username and an argon2id password. The session
//! cookie is `HttpOnly`, `SameSite=Lax`, `Secure` behind https. Forms carry
//! the session's CSRF token in a hidden field, `fetch` sends it as
//! `X-CSRF-Token`. Sessions end after 12 hours idle or 7 days in all, or
//! at sign-out.

use crate::AppState;
use crate::commands::sessions;
use crate::store;
use axum::http::{HeaderMap, HeaderValue};

pub use crate::commands::sessions::{
    Session, hash_password_blocking, random_secret, secrets_match,
};
pub use crate::domain::users::{ABSOLUTE_MS, NewUser, User};
pub use crate::edge::cookies::{SESSION_COOKIE, cookie};

/// A pre-session cookie pairing the sign-in and setup forms with their
/// hidden field (double submit), so a foreign site cannot sign a victim in.
pub const FORM_COOKIE: &str = "th_form";

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

/// How many users exist (none: the dashboard is not set up yet).
pub async fn count_users(pool: &sqlx::SqlitePool) -> Result<i64, sqlx::Error> {
    store::users::count(pool).await
}

/// The session of a request's cookie, if it carries a live one.
pub async fn from_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, store::CommandError> {
    match cookie(headers, SESSION_COOKIE) {
        Some(id) => sessions::authenticate(&state.store, id, store::now_ms()).await,
        None => Ok(None),
    }
}

/// The address the request came from (no address under `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Sign-in throttling that slows guessing without letting anyone lock a
/// user out. Failures are counted per source address, per (account,
/// source) pair and per account; past a few free attempts each key must
/// wait an exponentially growing delay before its next try. The delays
/// that a stranger can impose on someone else (the per-account one) stay
/// short, so the real user always gets in within seconds; the long ones
/// fall on the guessing source alone.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    keys: std::sync::Mutex<std::collections::HashMap<String, Backoff>>,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    last_ms: i64,
}

/// (free failures, longest delay in seconds) for one kind of key.
#[derive(Debug, Clone, Copy)]
struct Policy {
    free: u32,
    max_delay_s: i64,
}

impl LoginThrottle {
    /// One address trying one account: the guesser itself.
    const PAIR: Policy = Policy {
        free: 5,
        max_delay_s: 15 * 60,
    };
    /// One address trying many accounts (password spraying).
    const SOURCE: Policy = Policy {
        free: 20,
        max_delay_s: 60,
    };
    /// One account tried from everywhere: short, so it is never a lockout.
    const ACCOUNT: Policy = Policy {
        free: 10,
        max_delay_s: 30,
    };
    /// Counts are forgotten after this long without a failure.
    const FORGET_MS: i64 = 60 * 60 * 1000;

    /// The process-wide throttle. Keys carry the database path, so two
    /// servers in one process (tests) never share counts.
    pub fn global() -> &'static Self {
        static THROTTLE: std::sync::LazyLock<LoginThrottle> =
            std::sync::LazyLock::new(LoginThrottle::default);
        &THROTTLE
    }

    fn keys(
        scope: &str,
        username: &str,
        source: Option<std::net::IpAddr>,
    ) -> Vec<(String, Policy)> {
        let account = username.trim().to_lowercase();
        let source = source.map_or_else(|| "local".to_owned(), |ip| ip.to_string());
        vec![
            (format!("{scope}\0a\0{account}"), Self::ACCOUNT),
            (format!("{scope}\0s\0{source}"), Self::SOURCE),
            (format!("{scope}\0p\0{source}\0{account}"), Self::PAIR),
        ]
    }

    /// The delay a key has earned: 0 for the free failures, then 1, 2, 4 …
    /// seconds up to the policy's cap.
    fn delay_ms(backoff: Backoff, policy: Policy) -> i64 {
        if backoff.failures < policy.free {
            return 0;
        }
        let doublings = (backoff.failures - policy.free).min(20);
        (1i64 << doublings).min(policy.max_delay_s) * 1000
    }

    /// `Err(seconds to wait)` while any of the caller's keys is backing off.
    pub fn check(
        &self,
        scope: &str,
        username: &str,
        source: Option<std::net::IpAddr>,
        now_ms: i64,
    ) -> Result<(), u64> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let wait_ms = Self::keys(scope, username, source)
            .into_iter()
            .filter_map(|(key, policy)| {
                keys.get(&key)
                    .map(|b| b.last_ms + Self::delay_ms(*b, policy) - now_ms)
            })
            .max()
            .unwrap_or(0);
        if wait_ms > 0 {
            Err(((wait_ms + 999) / 1000) as u64)
        } else {
            Ok(())
        }
    }

    pub fn failed(
        &self,
        scope: &str,
        username: &str,
        source: Option<std::net::IpAddr>,
        now_ms: i64,
    ) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > 10_000 {
            keys.retain(|_, b| now_ms - b.last_ms < Self::FORGET_MS);
        }
        for (key, _) in Self::keys(scope, username, source) {
            let entry = keys.entry(key).or_insert(Backoff {
                failures: 0,
                last_ms: now_ms,
            });
            if now_ms - entry.last_ms >= Self::FORGET_MS {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last_ms = now_ms;
        }
    }

    /// A correct password clears this source's counts for the account and
    /// the account's own count.
    pub fn succeeded(&self, scope: &str, username: &str, source: Option<std::net::IpAddr>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _) in Self::keys(scope, username, source) {
            keys.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stranger_guessing_cannot_lock_the_real_user_out() {
        let throttle = LoginThrottle::default();
        let attacker = Some("203.0.113.9".parse().unwrap());
        let user = Some("198.51.100.7".parse().unwrap());
        let mut now = 0;
        // The attacker guesses as fast as the throttle lets it, for an hour.
        let mut guesses = 0;
        while now < 3_600_000 {
            match throttle.check("db", "admin", attacker, now) {
                Ok(()) => {
                    throttle.failed("db", "admin", attacker, now);
                    guesses += 1;
                }
                Err(wait) => now += wait as i64 * 1000,
            }
        }
        assert!(
            guesses < 30,
            "backoff should slow the guesser: {guesses} guesses"
        );
        // After its next wrong guess the attacker is made to wait minutes…
        throttle.failed("db", "admin", attacker, now);
        let attacker_wait = throttle
            .check("db", "admin", attacker, now)
            .err()
            .unwrap_or(0);
        assert!(attacker_wait > 60, "attacker waits {attacker_wait}s");
        // …while the real user, from elsewhere, waits at most half a minute.
        let user_wait = throttle.check("db", "admin", user, now).err().unwrap_or(0);
        assert!(user_wait <= 30, "the user would wait {user_wait}s");
        assert!(throttle.check("db", "admin", user, now + 30_000).is_ok());
        throttle.succeeded("db", "admin", user);
        assert!(throttle.check("db", "admin", user, now + 30_000).is_ok());
    }

    #[test]
    fn the_first_failures_are_free_then_delays_double() {
        let throttle = LoginThrottle::default();
        let me = Some("192.0.2.1".parse().unwrap());
        for _ in 0..4 {
            throttle.failed("db", "ann", me, 0);
            assert!(throttle.check("db", "ann", me, 0).is_ok());
        }
        throttle.failed("db", "ann", me, 0);
        assert_eq!(throttle.check("db", "ann", me, 0), Err(1));
        throttle.failed("db", "ann", me, 1000);
        assert_eq!(throttle.check("db", "ann", me, 1000), Err(2));
        // Other accounts from the same address are not held up yet.
        assert!(throttle.check("db", "bob", me, 1000).is_ok());
        // Forgotten after an hour of quiet.
        assert!(throttle.check("db", "ann", me, 1000 + 3_600_000).is_ok());
    }
}
