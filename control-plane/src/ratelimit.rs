//! Per-client fixed-window rate limit of waitlist submissions, and how the
//! client address is determined (socket, or `X-Forwarded-For` only when the
//! operator says a trusted proxy sits in front).
//!
//! The windows live in the control plane's SQLite database (`rate_windows`,
//! one upsert per submission), so a restart does not reset anyone's
//! allowance.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{extract::ConnectInfo, http::request::Parts};
use sqlx::SqlitePool;

use crate::store::now_ms;

#[derive(Clone)]
pub struct RateLimiter {
    pool: SqlitePool,
    limit: u32,
    window: Duration,
    checks: Arc<AtomicU64>,
}

/// Every this many checks, windows that have ended are deleted.
const SWEEP_EVERY: u64 = 1_000;

impl RateLimiter {
    pub fn new(pool: SqlitePool, limit: u32, window: Duration) -> Self {
        Self {
            pool,
            limit,
            window,
            checks: Arc::default(),
        }
    }

    /// Counts one request of `client`; `Err(seconds)` when over the limit,
    /// with the time until its window ends. A database failure lets the
    /// request through (logged): the waitlist stays up, and the insert that
    /// follows would fail the same way anyway.
    pub async fn check(&self, client: IpAddr) -> Result<(), u64> {
        let now = now_ms();
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let swept = sqlx::query("DELETE FROM rate_windows WHERE window_start <= ?")
                .bind(now.saturating_sub(window_ms))
                .execute(&self.pool)
                .await;
            if let Err(error) = swept {
                tracing::warn!(%error, "sweeping rate-limit windows failed");
            }
        }
        let row: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "INSERT INTO rate_windows (client, window_start, count) VALUES (?1, ?2, 1) \
             ON CONFLICT (client) DO UPDATE SET \
               count = CASE WHEN ?2 - window_start >= ?3 THEN 1 ELSE count + 1 END, \
               window_start = CASE WHEN ?2 - window_start >= ?3 THEN ?2 ELSE window_start END \
             RETURNING window_start, count",
        )
        .bind(client.to_string())
        .bind(now)
        .bind(window_ms)
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok((start, count)) if count > i64::from(self.limit) => {
                let left_ms = (start.saturating_add(window_ms) - now).max(0);
                Err(u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(%error, "rate-limit check failed; letting the request through");
                Ok(())
            }
        }
    }
}

/// The client address: the socket peer, or with `trust_proxy` the last
/// `X-Forwarded-For` entry (the one our proxy appended; earlier entries are
/// whatever the client claimed). `None` when neither is known.
pub fn client_ip(parts: &Parts, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return Some(ip);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool(dir: &std::path::Path) -> SqlitePool {
        crate::store::connect(&dir.join("cp.db"))
            .await
            .expect("database")
    }

    #[tokio::test]
    async fn limit_applies_per_address_and_reports_the_wait() {
        let dir = tempfile::tempdir().expect("temp dir");
        let limiter = RateLimiter::new(pool(dir.path()).await, 2, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(limiter.check(a).await.is_ok());
        assert!(limiter.check(a).await.is_ok());
        let wait = limiter.check(a).await.expect_err("third is limited");
        assert!((1..=60).contains(&wait));
        assert!(limiter.check(b).await.is_ok());
    }

    #[tokio::test]
    async fn the_limit_survives_a_restart_and_a_window_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a: IpAddr = [10, 0, 0, 1].into();
        let first = pool(dir.path()).await;
        let limiter = RateLimiter::new(first.clone(), 1, Duration::from_millis(1500));
        assert!(limiter.check(a).await.is_ok());
        first.close().await;
        // A new process over the same database file.
        let limiter = RateLimiter::new(pool(dir.path()).await, 1, Duration::from_millis(1500));
        assert!(limiter.check(a).await.is_err(), "restart reset the window");
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(limiter.check(a).await.is_ok(), "a new window allows again");
    }

    #[test]
    fn forwarded_for_is_used_only_when_trusted() {
        let request = axum::http::Request::builder()
            .header("x-forwarded-for", "1.2.3.4, 5.6.7.8")
            .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))))
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        assert_eq!(client_ip(&parts, false), Some([127, 0, 0, 1].into()));
        assert_eq!(client_ip(&parts, true), Some([5, 6, 7, 8].into()));
    }
}
