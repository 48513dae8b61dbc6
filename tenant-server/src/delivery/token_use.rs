//! `TokenUseRecorder`: writes the token uses the auth cache noted, in one
//! writer command per short window instead of one write per request.

use crate::store::tokens;
use crate::{AppState, StopSignal};
use std::time::Duration;

/// How long uses gather before one write records them all.
const WINDOW: Duration = Duration::from_millis(100);

pub struct TokenUseRecorder {
    state: AppState,
}

impl TokenUseRecorder {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Writes what is pending now; returns how many tokens it touched.
    pub async fn flush(&self) -> Result<usize, crate::store::CommandError> {
        let uses = self.state.store.auth.take_pending_use();
        if uses.is_empty() {
            return Ok(0);
        }
        let count = uses.len();
        self.state
            .store
            .run(move |tx| tokens::record_use(tx, &uses))
            .await?;
        Ok(count)
    }

    pub async fn run(self, stop: StopSignal) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.state.store.auth.use_pending.notified() => {}
            }
            tokio::time::sleep(WINDOW).await;
            if let Err(error) = self.flush().await {
                crate::telemetry::log_error("could not record token use", &error);
            }
        }
        // Whatever accumulated before the stop is still written.
        if let Err(error) = self.flush().await {
            crate::telemetry::log_error("could not record token use", &error);
        }
    }
}
