//! One repository's pace: the provider's rate-limit answers (`Retry-After`,
//! `x-ratelimit-remaining/reset`, GitLab's `RateLimit-*`, GitHub's
//! secondary limits) and our own spacing of mutations
//! (`TASKHARBOR_SYNC_MIN_INTERVAL_MS`, and at most 80 content-creating
//! requests a minute). Every provider call waits here first. The
//! "blocked until" instant is persisted by the worker, so a restart does
//! not hammer a provider that asked us to wait.

use crate::store::now_ms;
use http::HeaderMap;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// GitHub's documented secondary limit for content-creating requests.
pub const CREATES_PER_MINUTE: usize = 80;
/// When the provider says "slow down" without saying for how long.
const DEFAULT_BACKOFF_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Read,
    Mutation,
    /// Creates an issue or comment (counts against the secondary limit).
    Create,
}

#[derive(Debug, Default)]
struct State {
    blocked_until_ms: i64,
    last_mutation_ms: i64,
    creates: VecDeque<i64>,
}

#[derive(Debug)]
pub struct Limiter {
    min_interval_ms: i64,
    state: Mutex<State>,
    waits: prometheus::IntCounter,
}

impl Limiter {
    pub fn new(min_interval_ms: u64, waits: prometheus::IntCounter) -> Self {
        Self {
            min_interval_ms: i64::try_from(min_interval_ms).unwrap_or(i64::MAX),
            state: Mutex::default(),
            waits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Restores a persisted "blocked until" (epoch ms).
    pub fn restore(&self, blocked_until_ms: Option<i64>) {
        if let Some(until) = blocked_until_ms {
            let mut s = self.lock();
            s.blocked_until_ms = s.blocked_until_ms.max(until);
        }
    }

    /// The instant before which nothing may be sent, if in the future.
    pub fn blocked_until_ms(&self) -> Option<i64> {
        let until = self.lock().blocked_until_ms;
        (until > now_ms()).then_some(until)
    }

    /// How long a call of `kind` must wait now (0: go), reserving its slot.
    fn reserve(&self, kind: CallKind) -> i64 {
        let now = now_ms();
        let mut s = self.lock();
        let mut at = s.blocked_until_ms.max(now);
        if kind != CallKind::Read {
            at = at.max(s.last_mutation_ms + self.min_interval_ms);
        }
        if kind == CallKind::Create {
            while s.creates.front().is_some_and(|t| *t <= at - 60_000) {
                s.creates.pop_front();
            }
            if s.creates.len() >= CREATES_PER_MINUTE
                && let Some(oldest) = s.creates.front()
            {
                at = at.max(oldest + 60_000);
            }
            s.creates.push_back(at);
        }
        if kind != CallKind::Read {
            s.last_mutation_ms = at;
        }
        at - now
    }

    /// Waits until a call of `kind` may be sent.
    pub async fn ready(&self, kind: CallKind) {
        let wait = self.reserve(kind);
        if wait > 0 {
            self.waits.inc();
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
        // A rate-limit answer to another call may have arrived meanwhile.
        loop {
            let until = self.lock().blocked_until_ms;
            let now = now_ms();
            if until <= now {
                break;
            }
            tokio::time::sleep(Duration::from_millis((until - now).unsigned_abs())).await;
        }
    }

    /// A mutation's answer arrived: the interval counts from here too, so
    /// mutations are spaced as the provider sees them, not only as sent.
    pub fn mutation_done(&self) {
        let now = now_ms();
        let mut s = self.lock();
        s.last_mutation_ms = s.last_mutation_ms.max(now);
    }

    /// Reads an answer's rate-limit headers. Returns how long to wait if
    /// the answer itself was a rate-limit refusal.
    pub fn observe(&self, status: u16, headers: &HeaderMap, body: &str) -> Option<Duration> {
        let now = now_ms();
        let plan = rate_limit_plan(status, headers, body, now);
        if let Some(until) = plan.blocked_until_ms {
            let mut s = self.lock();
            s.blocked_until_ms = s.blocked_until_ms.max(until);
        }
        plan.refused.then(|| {
            Duration::from_millis(
                (plan.blocked_until_ms.unwrap_or(now) - now)
                    .max(0)
                    .unsigned_abs(),
            )
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct RatePlan {
    /// Nothing may be sent before this instant (epoch ms).
    pub blocked_until_ms: Option<i64>,
    /// The answer was a rate-limit refusal (the request did not apply).
    pub refused: bool,
}

fn header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
}

/// The pure rule: what an answer's status, headers and body say about pace.
pub fn rate_limit_plan(status: u16, headers: &HeaderMap, body: &str, now: i64) -> RatePlan {
    let retry_after = header(headers, &["retry-after"])
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|secs| now + secs.max(0) * 1000);
    let remaining = header(headers, &["x-ratelimit-remaining", "ratelimit-remaining"])
        .and_then(|v| v.trim().parse::<i64>().ok());
    let reset = header(headers, &["x-ratelimit-reset", "ratelimit-reset"])
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|epoch_secs| epoch_secs * 1000);
    let exhausted = remaining == Some(0);
    let secondary = status == 403 && body.to_ascii_lowercase().contains("rate limit");
    let refused =
        status == 429 || (status == 403 && (exhausted || secondary || retry_after.is_some()));
    let blocked_until_ms = if let Some(at) = retry_after {
        Some(at)
    } else if exhausted {
        Some(
            reset
                .filter(|r| *r > now)
                .unwrap_or(now + DEFAULT_BACKOFF_MS),
        )
    } else if refused {
        Some(now + DEFAULT_BACKOFF_MS)
    } else {
        None
    };
    RatePlan {
        blocked_until_ms,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap_or_else(|_| unreachable!()));
        }
        map
    }

    #[test]
    fn retry_after_wins_and_marks_a_refusal() {
        let plan = rate_limit_plan(429, &headers(&[("retry-after", "7")]), "", 1_000);
        assert_eq!(
            plan,
            RatePlan {
                blocked_until_ms: Some(8_000),
                refused: true
            }
        );
    }

    #[test]
    fn an_exhausted_quota_blocks_until_the_reset_even_on_success() {
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "50")]);
        let plan = rate_limit_plan(200, &h, "", 1_000);
        assert_eq!(
            plan,
            RatePlan {
                blocked_until_ms: Some(50_000),
                refused: false
            }
        );
        let plan = rate_limit_plan(403, &h, "API rate limit exceeded", 1_000);
        assert!(plan.refused);
    }

    #[test]
    fn a_secondary_limit_without_headers_waits_a_minute() {
        let plan = rate_limit_plan(
            403,
            &HeaderMap::new(),
            "You have exceeded a secondary rate limit",
            0,
        );
        assert_eq!(
            plan,
            RatePlan {
                blocked_until_ms: Some(60_000),
                refused: true
            }
        );
        // An ordinary 403 is not a rate limit.
        assert!(!rate_limit_plan(403, &HeaderMap::new(), "Resource not accessible", 0).refused);
    }

    #[test]
    fn mutations_are_spaced_by_the_minimum_interval() {
        let limiter = Limiter::new(
            500,
            prometheus::IntCounter::new("w", "w").unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(limiter.reserve(CallKind::Read), 0);
        assert!(limiter.reserve(CallKind::Mutation) <= 0);
        let second = limiter.reserve(CallKind::Mutation);
        assert!((400..=500).contains(&second), "{second}");
        assert_eq!(limiter.reserve(CallKind::Read), 0, "reads are not spaced");
    }
}
