//! Webhook rules: who may see and edit a subscription, what an edit
//! changes, how long a rotated secret keeps signing, and what happens to a
//! delivery after an attempt (the retry schedule, `Retry-After`, giving
//! up, disabling the endpoint).

use super::DomainError;
use super::auth::Principal;
use super::event::EventType;
use std::time::Duration;

/// Delay after the n-th failed attempt (sums to about three days).
pub const SCHEDULE_SECONDS: [u64; 10] = [
    5, 300, 1800, 7200, 18_000, 36_000, 36_000, 50_400, 50_400, 57_600,
];
/// An endpoint failing continuously for this long is disabled.
pub const GIVE_UP_AFTER_MS: i64 = 3 * 24 * 3600 * 1000;
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long finished deliveries (delivered or failed) stay in the log.
pub const DELIVERY_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
/// How long the old secret keeps signing after a rotation, by default and at most.
pub const DEFAULT_OVERLAP_SECONDS: i64 = 86_400;
pub const MAX_OVERLAP_SECONDS: i64 = 7 * 86_400;

/// Webhooks are a board's administration: a caller who is not a board
/// admin of the board does not see them at all (`404`, not `403`).
pub fn may_manage(caller: &Principal, board_id: i64) -> bool {
    caller.is_board_admin(board_id)
}

/// The overlap of a rotation in milliseconds (`overlap_seconds`, default a day).
pub fn rotation_overlap_ms(overlap_seconds: Option<i64>) -> Result<i64, DomainError> {
    let seconds = overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&seconds) {
        return Err(DomainError::validation(
            "overlap_seconds",
            format!("must be between 0 and {MAX_OVERLAP_SECONDS}"),
        ));
    }
    Ok(seconds * 1000)
}

/// A subscription's editable settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: String,
    pub events: Vec<EventType>,
    pub enabled: bool,
}

/// What an edit comes to: the settings to write, and whether it re-enables
/// the endpoint (which clears the server's disable reason and failure run,
/// and makes its pending deliveries due again: the sender must hear of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChange {
    pub settings: WebhookSettings,
    pub re_enabled: bool,
}

pub fn plan_update(
    current: &WebhookSettings,
    url: Option<&str>,
    events: Option<&[EventType]>,
    enabled: Option<bool>,
) -> WebhookChange {
    WebhookChange {
        re_enabled: enabled == Some(true) && !current.enabled,
        settings: WebhookSettings {
            url: url.map_or_else(|| current.url.clone(), str::to_owned),
            events: events.map_or_else(|| current.events.clone(), <[EventType]>::to_vec),
            enabled: enabled.unwrap_or(current.enabled),
        },
    }
}

/// How one attempt went, as the sender saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx answer.
    Delivered,
    /// `410 Gone`: the receiver asks never to be called again.
    Gone,
    /// The message cannot be signed: no retry would change that.
    Unsendable,
    /// A network error, a timeout, a non-2xx answer or a refused target;
    /// `retry_after` is what the receiver asked for, if anything.
    Failed { retry_after: Option<Duration> },
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(i64),
    /// Out of retries.
    Failed,
    /// The endpoint said 410 Gone (or failed for days): disable it.
    DisableEndpoint(String),
}

impl AttemptOutcome {
    /// The metrics label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RetryAt(_) => "retry",
            Self::Failed => "failed",
            Self::DisableEndpoint(_) => "disabled",
        }
    }
}

/// The next attempt's delay after `failed_attempts` failures, or `None`
/// when the schedule is exhausted. `scale` shortens the schedule (tests);
/// `jitter` is in [-1, 1] (±10 %).
pub fn backoff(
    failed_attempts: i64,
    retry_after: Option<Duration>,
    scale: f64,
    jitter: f64,
) -> Option<Duration> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    let base = *SCHEDULE_SECONDS.get(index)? as f64 * scale;
    let jittered = Duration::from_secs_f64((base * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0))).max(0.0));
    Some(match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    })
}

/// Decides a delivery's fate after an attempt at `at_ms`, its
/// `attempts_before` earlier attempts and its endpoint's current run of
/// failures (`failing_since`), read in the same transaction that records it.
pub fn decide_attempt(
    result: AttemptResult,
    attempts_before: i64,
    failing_since: Option<i64>,
    at_ms: i64,
    scale: f64,
    jitter: f64,
) -> AttemptOutcome {
    match result {
        AttemptResult::Delivered => AttemptOutcome::Delivered,
        AttemptResult::Gone => {
            AttemptOutcome::DisableEndpoint("the receiver answered 410 Gone".into())
        }
        AttemptResult::Unsendable => AttemptOutcome::Failed,
        AttemptResult::Failed { retry_after } => {
            if failing_since.is_some_and(|since| at_ms - since > GIVE_UP_AFTER_MS) {
                return AttemptOutcome::DisableEndpoint("failing for more than three days".into());
            }
            match backoff(attempts_before + 1, retry_after, scale, jitter) {
                Some(delay) => AttemptOutcome::RetryAt(at_ms + delay.as_millis() as i64),
                None => AttemptOutcome::Failed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_schedule_within_jitter_and_ends() {
        assert_eq!(backoff(1, None, 1.0, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(backoff(2, None, 1.0, 0.0), Some(Duration::from_secs(300)));
        let high = backoff(3, None, 1.0, 1.0).unwrap();
        let low = backoff(3, None, 1.0, -1.0).unwrap();
        assert_eq!(high, Duration::from_secs(1980));
        assert_eq!(low, Duration::from_secs(1620));
        let total: u64 = SCHEDULE_SECONDS.iter().sum();
        assert!(
            (2.5 * 86400.0..3.5 * 86400.0).contains(&(total as f64)),
            "about three days: {total}"
        );
        assert_eq!(backoff(11, None, 1.0, 0.0), None);
        assert_eq!(backoff(0, None, 1.0, 0.0), None);
    }

    #[test]
    fn retry_after_stretches_the_delay_but_is_capped() {
        assert_eq!(
            backoff(1, Some(Duration::from_secs(60)), 1.0, 0.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(1)), 1.0, 0.0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(10 * 86400)), 1.0, 0.0),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn an_attempt_is_retried_on_schedule_given_up_after_days_and_gone_disables() {
        let failed = AttemptResult::Failed { retry_after: None };
        assert_eq!(
            decide_attempt(failed, 0, None, 1_000, 1.0, 0.0),
            AttemptOutcome::RetryAt(6_000)
        );
        assert_eq!(
            decide_attempt(failed, 10, Some(0), 1_000, 1.0, 0.0),
            AttemptOutcome::Failed,
            "the schedule is exhausted"
        );
        assert!(matches!(
            decide_attempt(failed, 1, Some(0), GIVE_UP_AFTER_MS + 1, 1.0, 0.0),
            AttemptOutcome::DisableEndpoint(_)
        ));
        assert!(matches!(
            decide_attempt(failed, 1, Some(0), GIVE_UP_AFTER_MS, 1.0, 0.0),
            AttemptOutcome::RetryAt(_)
        ));
        assert!(matches!(
            decide_attempt(AttemptResult::Gone, 0, None, 0, 1.0, 0.0),
            AttemptOutcome::DisableEndpoint(_)
        ));
        assert_eq!(
            decide_attempt(AttemptResult::Unsendable, 0, None, 0, 1.0, 0.0),
            AttemptOutcome::Failed
        );
        assert_eq!(
            decide_attempt(AttemptResult::Delivered, 3, Some(0), 0, 1.0, 0.0),
            AttemptOutcome::Delivered
        );
    }

    #[test]
    fn an_edit_keeps_what_it_does_not_name_and_notices_re_enabling() {
        let current = WebhookSettings {
            url: "https://a.example/hook".into(),
            events: vec![EventType::ItemDone],
            enabled: false,
        };
        let change = plan_update(&current, None, None, Some(true));
        assert!(change.re_enabled);
        assert_eq!(change.settings.url, current.url);
        assert_eq!(change.settings.events, current.events);
        let change = plan_update(&current, Some("https://b.example/"), Some(&[]), None);
        assert!(!change.re_enabled);
        assert!(!change.settings.enabled);
        assert!(change.settings.events.is_empty());
        assert_eq!(change.settings.url, "https://b.example/");
        let enabled = WebhookSettings {
            enabled: true,
            ..current
        };
        assert!(!plan_update(&enabled, None, None, Some(true)).re_enabled);
    }

    #[test]
    fn rotation_overlap_defaults_to_a_day_and_is_bounded() {
        assert_eq!(rotation_overlap_ms(None), Ok(86_400_000));
        assert_eq!(rotation_overlap_ms(Some(0)), Ok(0));
        assert!(rotation_overlap_ms(Some(-1)).is_err());
        assert!(rotation_overlap_ms(Some(MAX_OVERLAP_SECONDS + 1)).is_err());
    }
}
