//! `WebhookSender`: drains the webhook outbox. Wakes on every committed
//! change (so `item.agent-ready` reaches an agent within milliseconds) and
//! at the next retry time; signs each attempt per Standard Webhooks with
//! the same `webhook-id`; retries with exponential backoff and jitter over
//! about three days; honours `Retry-After`; `410 Gone` disables the
//! endpoint; logs every attempt.

use super::signing;
use super::ssrf::{self, PublicOnlyResolver};
use crate::store::model::Timestamp;
use crate::store::webhooks::{self, Attempt, AttemptOutcome, DueDelivery};
use crate::store::{self};
use crate::{AppState, StopSignal};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Delay after the n-th failed attempt (sums to about three days).
const SCHEDULE_SECONDS: [u64; 10] = [
    5, 300, 1800, 7200, 18_000, 36_000, 36_000, 50_400, 50_400, 57_600,
];
/// An endpoint failing continuously for this long is disabled.
const GIVE_UP_AFTER_MS: i64 = 3 * 24 * 3600 * 1000;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
const CONCURRENCY: usize = 32;
const SNIPPET: usize = 500;

/// Delivery metrics, registered on the server's registry.
#[derive(Clone)]
pub struct DeliveryMetrics {
    pub deliveries: IntCounterVec,
    pub latency: Histogram,
}

impl DeliveryMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_attempts_total",
                "Webhook delivery attempts by outcome",
            ),
            &["outcome"],
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "webhook_attempt_duration_seconds",
                "Time for a receiver to answer a webhook",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
            ]),
        )?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            deliveries,
            latency,
        })
    }
}

/// The next attempt's delay after `failed_attempts` failures, or `None`
/// when the schedule is exhausted. `jitter` is in [-1, 1].
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

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(delta.whole_seconds().max(0) as u64))
}

/// Deliveries being attempted (`None`) or attempted recently (`Some(when
/// the attempt's result was committed)`). An outbox read that began before
/// an attempt committed may still see that delivery as pending; such a
/// delivery is skipped, so a healthy receiver never gets a duplicate.
type InFlight = HashMap<i64, Option<Instant>>;

pub struct WebhookSender {
    state: AppState,
    /// Built on the first delivery: a TLS client with its root store is a
    /// few MiB that an instance without webhooks never needs.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    metrics: Arc<DeliveryMetrics>,
    in_flight: Arc<Mutex<InFlight>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
}

impl WebhookSender {
    pub fn new(state: AppState) -> Result<Self, SenderError> {
        let metrics = state.delivery_metrics.clone();
        Ok(Self {
            client: std::sync::OnceLock::new(),
            state,
            metrics,
            in_flight: Arc::default(),
        })
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| self.build_client().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn build_client(&self) -> Result<reqwest::Client, SenderError> {
        let state = &self.state;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("TaskHarbor-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(8);
        if !state.config.allow_private_webhooks {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(builder.build()?)
    }

    pub async fn run(self, stop: StopSignal) {
        let this = Arc::new(self);
        let mut changes = this.state.changes.subscribe();
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        loop {
            let now = store::now_ms();
            let read_started = Instant::now();
            let due = webhooks::due(&this.state.store.reader, now, (CONCURRENCY * 2) as i64).await;
            // Attempts committed before this read began are reflected in it.
            this.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, finished| finished.is_none_or(|at| at > read_started));
            match due {
                Ok(due) => {
                    for delivery in due {
                        {
                            let mut in_flight =
                                this.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                            if in_flight.contains_key(&delivery.id) {
                                continue;
                            }
                            in_flight.insert(delivery.id, None);
                        }
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (sender, done) = (this.clone(), done_tx.clone());
                        tokio::spawn(async move {
                            let id = delivery.id;
                            sender.attempt(delivery).await;
                            sender
                                .in_flight
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(id, Some(Instant::now()));
                            drop(permit);
                            let _ = done.send(());
                        });
                    }
                }
                Err(error) => tracing::error!(%error, "cannot read the webhook outbox"),
            }
            let sleep = match webhooks::next_due_at(&this.state.store.reader).await {
                Ok(Some(at)) => {
                    Duration::from_millis((at - store::now_ms()).clamp(0, 60_000) as u64)
                }
                _ => Duration::from_secs(60),
            };
            // Everything due is in flight: wait for news rather than spin.
            let sleep = if sleep.is_zero() {
                Duration::from_millis(50)
            } else {
                sleep
            };
            tokio::select! {
                () = stop.cancelled() => break,
                _ = changes.changed() => {}
                _ = done_rx.recv() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
        // Let attempts in flight finish (they are bounded by the timeout).
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    async fn attempt(&self, delivery: DueDelivery) {
        let started = Instant::now();
        let at_ms = store::now_ms();
        let (record, outcome) = self.send(&delivery, at_ms).await;
        let latency = started.elapsed();
        self.metrics.latency.observe(latency.as_secs_f64());
        let label = match &outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::RetryAt(_) => "retry",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::DisableEndpoint(_) => "disabled",
        };
        self.metrics.deliveries.with_label_values(&[label]).inc();
        if let AttemptOutcome::DisableEndpoint(reason) = &outcome {
            tracing::warn!(webhook_id = delivery.webhook_id, %reason, "webhook endpoint disabled");
        }
        if let Err(error) =
            webhooks::record_attempt(&self.state.store.writer, &delivery, &record, &outcome).await
        {
            // Not recorded: the delivery stays due and is sent again (at-least-once).
            tracing::error!(%error, delivery = delivery.id, "cannot record a webhook attempt");
        }
        if label == "disabled" {
            self.state.notify_change();
        }
    }

    async fn send(&self, delivery: &DueDelivery, at_ms: i64) -> (Attempt, AttemptOutcome) {
        let started = Instant::now();
        let timestamp = at_ms / 1000;
        let mut record = Attempt {
            at: Timestamp(at_ms),
            status_code: None,
            latency_ms: 0,
            error: None,
            response: None,
        };
        let mut secrets = vec![delivery.secret.as_str()];
        if let (Some(previous), Some(until)) = (&delivery.previous_secret, delivery.previous_until)
            && until > at_ms
        {
            secrets.push(previous.as_str());
        }
        let signature = match signing::signature_header(
            &secrets,
            &delivery.message_id,
            timestamp,
            &delivery.payload,
        ) {
            Ok(signature) => signature,
            Err(error) => {
                record.error = Some(error.to_string());
                return (record, AttemptOutcome::Failed);
            }
        };
        let url = match reqwest::Url::parse(&delivery.url) {
            Ok(url)
                if self.state.config.allow_private_webhooks || ssrf::literal_host_allowed(&url) =>
            {
                url
            }
            _ => {
                record.error = Some("the URL targets a non-public address".into());
                return self.failed(delivery, record, None).await;
            }
        };
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => {
                record.error = Some(format!("no HTTP client: {error}"));
                return self.failed(delivery, record, None).await;
            }
        };
        let result = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status();
                let wait = retry_after(response.headers());
                let body = response.bytes().await.unwrap_or_default();
                record.latency_ms = started.elapsed().as_millis() as i64;
                record.status_code = Some(i64::from(status.as_u16()));
                record.response =
                    Some(String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]).into_owned());
                if status.is_success() {
                    (record, AttemptOutcome::Delivered)
                } else if status == reqwest::StatusCode::GONE {
                    (
                        record,
                        AttemptOutcome::DisableEndpoint("the receiver answered 410 Gone".into()),
                    )
                } else {
                    self.failed(delivery, record, wait).await
                }
            }
            Err(error) => {
                record.latency_ms = started.elapsed().as_millis() as i64;
                // The chain says what went wrong (refused, timeout, DNS) without secrets.
                let mut message = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    message.push_str(": ");
                    message.push_str(&cause.to_string());
                    source = cause.source();
                }
                record.error = Some(message);
                self.failed(delivery, record, None).await
            }
        }
    }

    async fn failed(
        &self,
        delivery: &DueDelivery,
        record: Attempt,
        wait: Option<Duration>,
    ) -> (Attempt, AttemptOutcome) {
        let failing_since = webhooks::failing_since(&self.state.store.reader, delivery.webhook_id)
            .await
            .ok()
            .flatten();
        if failing_since.is_some_and(|since| record.at.0 - since > GIVE_UP_AFTER_MS) {
            return (
                record,
                AttemptOutcome::DisableEndpoint("failing for more than three days".into()),
            );
        }
        let jitter = rand::rng().random_range(-1.0..=1.0);
        let outcome = match backoff(
            delivery.attempts + 1,
            wait,
            self.state.config.webhook_retry_scale,
            jitter,
        ) {
            Some(delay) => AttemptOutcome::RetryAt(record.at.0 + delay.as_millis() as i64),
            None => AttemptOutcome::Failed,
        };
        (record, outcome)
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
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
    }
}
