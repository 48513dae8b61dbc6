//! Background workers that run beside the HTTP server.

pub mod lease_reaper;

use crate::{AppState, StopSignal};
use tokio::task::JoinHandle;

pub fn spawn_all(state: AppState, stop: StopSignal) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(
        lease_reaper::LeaseReaper::new(state).run(stop),
    )]
}
