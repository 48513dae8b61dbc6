//! `WebhookSender`: drains the webhook outbox. Wakes on every committed
//! change (so `item.agent-ready` reaches an agent within milliseconds) and
//! at the next retry time; signs each attempt per Standard Webhooks with
//! the same `webhook-id`; logs every attempt. What happens after an
//! attempt (backoff with jitter over about three days, `Retry-After`,
//! `410 Gone` disabling the endpoint) is `domain::webhook`'s decision,
//! taken inside the writer command that records the attempt.

use super::signing;
use super::ssrf::{self, PublicOnlyResolver};
use crate::commands;
use crate::domain::webhook::{AttemptOutcome, AttemptResult, DELIVERY_RETENTION_MS};
use crate::store::model::Timestamp;
use crate::store::webhooks::{self, Attempt, DueDelivery};
use crate::store::{self};
use crate::{AppState, StopSignal};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;
const SNIPPET: usize = 500;
/// A taken delivery is not due again for this long: four times one
/// attempt's bound (a 15 s timeout; its slot is free when it is taken), so
/// it is sent twice only if its attempt was never recorded (a crash).
const ATTEMPT_LEASE_MS: i64 = 60 * 1000;
/// How often finished deliveries past their retention are pruned, and how
/// many one writer command deletes (so no command holds the writer long).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_BATCH: i64 = 500;

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

pub struct WebhookSender {
    state: AppState,
    /// Built on the first delivery: a TLS client with its root store is a
    /// few MiB that an instance without webhooks never needs.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    metrics: Arc<DeliveryMetrics>,
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
        // Woken by commits that gave it work (outbox rows, a re-enabled
        // endpoint, a retry), not by every commit.
        let mut changes = this.state.store.outbox.subscribe();
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut pruned_at: Option<Instant> = None;
        loop {
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                this.prune().await;
                pruned_at = Some(Instant::now());
            }
            let now = store::now_ms();
            // A read first: the writer is asked only when something is due.
            let wait = match webhooks::next_due_at(&this.state.store.reader).await {
                Ok(Some(at)) => Duration::from_millis((at - now).clamp(0, 60_000) as u64),
                Ok(None) => Duration::from_secs(60),
                Err(error) => {
                    tracing::error!(%error, "cannot read the webhook outbox");
                    Duration::from_secs(5)
                }
            };
            let free = slots.available_permits();
            if wait.is_zero() && free > 0 {
                match commands::webhooks::take_due(
                    &this.state.store,
                    now,
                    free as i64,
                    ATTEMPT_LEASE_MS,
                )
                .await
                {
                    Ok(due) if !due.is_empty() => {
                        for delivery in due {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let (sender, done) = (this.clone(), done_tx.clone());
                            tokio::spawn(async move {
                                sender.attempt(delivery).await;
                                drop(permit);
                                let _ = done.send(());
                            });
                        }
                        // More may be due: look again at once.
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "cannot take due webhook deliveries"),
                }
            }
            // Everything due is in flight: wait for news rather than spin.
            let wait = if wait.is_zero() {
                Duration::from_millis(50)
            } else {
                wait
            };
            tokio::select! {
                () = stop.cancelled() => break,
                _ = changes.changed() => {}
                _ = done_rx.recv() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Let attempts in flight finish (they are bounded by the timeout).
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    /// Deletes finished deliveries past their retention, a batch per command.
    async fn prune(&self) {
        let before = store::now_ms() - DELIVERY_RETENTION_MS;
        loop {
            match commands::webhooks::prune_outbox(&self.state.store, before, PRUNE_BATCH).await {
                Ok(n) if (n as i64) < PRUNE_BATCH => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "cannot prune the webhook outbox");
                    break;
                }
            }
        }
    }

    async fn attempt(&self, delivery: DueDelivery) {
        let started = Instant::now();
        let at_ms = store::now_ms();
        let (record, result) = self.send(&delivery, at_ms).await;
        self.metrics
            .latency
            .observe(started.elapsed().as_secs_f64());
        let jitter = rand::rng().random_range(-1.0..=1.0);
        let recorded = commands::webhooks::record_attempt(
            &self.state.store,
            delivery.id,
            &record,
            result,
            self.state.config.webhook_retry_scale,
            jitter,
        )
        .await;
        match recorded {
            Ok(Some(outcome)) => {
                self.metrics
                    .deliveries
                    .with_label_values(&[outcome.label()])
                    .inc();
                if let AttemptOutcome::DisableEndpoint(reason) = &outcome {
                    tracing::warn!(webhook_id = delivery.webhook_id, %reason, "webhook endpoint disabled");
                }
            }
            Ok(None) => {
                tracing::debug!(delivery = delivery.id, "webhook deleted during an attempt");
            }
            Err(error) => {
                // Not recorded: the delivery is due again after its lease
                // and is sent again (at-least-once).
                tracing::error!(%error, delivery = delivery.id, "cannot record a webhook attempt");
            }
        }
    }

    async fn send(&self, delivery: &DueDelivery, at_ms: i64) -> (Attempt, AttemptResult) {
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
                return (record, AttemptResult::Unsendable);
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
                return (record, AttemptResult::Failed { retry_after: None });
            }
        };
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => {
                record.error = Some(format!("no HTTP client: {error}"));
                return (record, AttemptResult::Failed { retry_after: None });
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
                let result = if status.is_success() {
                    AttemptResult::Delivered
                } else if status == reqwest::StatusCode::GONE {
                    AttemptResult::Gone
                } else {
                    AttemptResult::Failed { retry_after: wait }
                };
                (record, result)
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
                (record, AttemptResult::Failed { retry_after: None })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
