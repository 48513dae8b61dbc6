//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator
//! replicas are safe: only the holder of the lease runs the controller.
//!
//! kube 5 has no elector, so this is a small one following client-go's
//! rules: a lease is taken over only after its record has not changed for a
//! full lease duration *as observed by this replica's own clock* (no trust in
//! other nodes' clocks); updates use the resourceVersion, so two candidates
//! can never both win; the leader renews every `renew_interval` and steps
//! down when it cannot renew within `renew_deadline`; on shutdown the lease
//! is released so a standby takes over at once.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique per replica (the pod name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// One candidate for the lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// Last lease record seen (resourceVersion) and when this replica saw it change.
    observed: Option<(String, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Acquires or renews the lease. `Ok(true)`: this replica is the leader.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaseError> {
        let me = self.config.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(err) if is_conflict(&err) => Ok(false),
                Err(err) => Err(err.into()),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let seen_at = match &self.observed {
            Some((v, at)) if *v == version => *at,
            _ => Instant::now(),
        };
        self.observed = Some((version, seen_at));
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_me = holder.as_deref() == Some(me.as_str());
        let expired = seen_at.elapsed() > self.config.lease_duration;
        if !held_by_me && holder.is_some() && !expired {
            return Ok(false);
        }
        if !held_by_me {
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.holder_identity = Some(me);
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(self.duration_secs());
        // Replace carries our resourceVersion: if anyone wrote in between,
        // this fails with 409 and we are not the leader.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observed = updated
                    .metadata
                    .resource_version
                    .map(|v| (v, Instant::now()));
                Ok(true)
            }
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Gives the lease up (only if still ours) so a standby can take over at once.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // A dropped sender counts as shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Runs `lead` while this replica holds the lease. `lead` gets a future that
/// resolves when it must stop (leadership lost or shutdown); it is started
/// again if leadership is regained. Returns after shutdown.
pub async fn run_elected<F, Fut>(
    mut elector: Elector,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
    mut lead: F,
) where
    F: FnMut(oneshot::Receiver<()>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let retry = elector.config.retry_period;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    () = tokio::time::sleep(retry) => continue,
                    () = wait_for_shutdown(&mut shutdown) => return,
                }
            }
            Err(err) => {
                warn!(error = %err, "leader election attempt failed");
                tokio::select! {
                    () = tokio::time::sleep(retry) => continue,
                    () = wait_for_shutdown(&mut shutdown) => return,
                }
            }
        }

        info!(identity = %elector.config.identity, "acquired leader lease");
        metrics.leader.set(1);
        let (stop, stopped) = oneshot::channel();
        let mut work = tokio::spawn(lead(stopped));
        let mut last_renew = Instant::now();
        let mut shutting_down = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(retry) => {
                    match elector.try_acquire_or_renew().await {
                        Ok(true) => last_renew = Instant::now(),
                        Ok(false) => {
                            warn!("leader lease taken by another replica");
                            break;
                        }
                        Err(err) if last_renew.elapsed() < elector.config.renew_deadline => {
                            warn!(error = %err, "could not renew leader lease; retrying");
                        }
                        Err(err) => {
                            warn!(error = %err, "could not renew leader lease before the deadline");
                            break;
                        }
                    }
                }
                () = wait_for_shutdown(&mut shutdown) => {
                    shutting_down = true;
                    break;
                }
                _ = &mut work => {
                    warn!("controller exited while leading");
                    break;
                }
            }
        }
        let _ = stop.send(());
        if !work.is_finished() {
            let _ = work.await;
        }
        metrics.leader.set(0);
        if shutting_down || *shutdown.borrow() {
            if let Err(err) = elector.release().await {
                warn!(error = %err, "could not release leader lease");
            }
            info!("released leader lease");
            return;
        }
    }
}
