//! Background workers that run beside the HTTP server: the lease reaper
//! and the webhook sender.

pub mod lease_reaper;
pub mod signing;
pub mod ssrf;
pub mod token_use;
pub mod webhooks;

use crate::{AppState, StopSignal};
use tokio::task::JoinHandle;

pub fn spawn_all(state: AppState, stop: StopSignal) -> Vec<JoinHandle<()>> {
    let mut workers = vec![
        tokio::spawn(lease_reaper::LeaseReaper::new(state.clone()).run(stop.clone())),
        tokio::spawn(token_use::TokenUseRecorder::new(state.clone()).run(stop.clone())),
    ];
    match webhooks::WebhookSender::new(state) {
        Ok(sender) => workers.push(tokio::spawn(sender.run(stop))),
        Err(error) => tracing::error!(%error, "webhook delivery is not running"),
    }
    workers
}
