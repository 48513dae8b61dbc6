//! Per-client fixed-window rate limit of waitlist submissions, and how the
//! client address is determined (socket, or `X-Forwarded-For` only when the
//! operator says a trusted proxy sits in front).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, http::request::Parts};

#[derive(Clone)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

/// Above this many tracked addresses, expired windows are swept.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one request of `client`; `Err(seconds)` when over the limit,
    /// with the time until its window ends.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-update;
        // the counters are still usable.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= SWEEP_AT {
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
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

    #[test]
    fn limit_applies_per_address_and_reports_the_wait() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let wait = limiter.check(a).expect_err("third is limited");
        assert!((1..=60).contains(&wait));
        assert!(limiter.check(b).is_ok());
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
