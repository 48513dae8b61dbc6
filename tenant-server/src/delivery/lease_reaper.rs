//! `LeaseReaper`: releases claims whose lease expired (event
//! `item.claim-expired`; items in progress go back to a ready lane) and
//! forgets idempotency records past their 24 hours.
//!
//! Correctness never waits for it: every command already treats a lapsed
//! lease as free. The reaper makes expiry visible to people and webhooks.

use crate::commands::queue;
use crate::store;
use crate::{AppState, StopSignal};
use std::time::Duration;

const BATCH: i64 = 200;

pub struct LeaseReaper {
    state: AppState,
}

impl LeaseReaper {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// One pass: reaps every lapsed claim in batches; returns how many.
    pub async fn reap(&self) -> Result<usize, store::CommandError> {
        let mut total = 0;
        loop {
            let reaped = queue::reap_expired(&self.state.store, BATCH, store::now_ms()).await?;
            total += reaped.len();
            if !reaped.is_empty() {
                self.state
                    .metrics
                    .lease_expiries
                    .inc_by(reaped.len() as u64);
                tracing::info!(items = ?reaped, "released expired claims");
            }
            if (reaped.len() as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    pub async fn run(self, stop: StopSignal) {
        let mut tick = tokio::time::interval(Duration::from_millis(
            self.state.config.reaper_interval_ms.max(10),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut passes: u64 = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.reap().await {
                crate::telemetry::log_error("lease reaper pass failed", &error);
            }
            passes += 1;
            if passes.is_multiple_of(600)
                && let Err(error) =
                    crate::commands::idempotency::purge(&self.state.store, store::now_ms()).await
            {
                tracing::warn!(%error, "could not purge idempotency records");
            }
        }
    }
}
