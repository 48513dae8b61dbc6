//! The `TaskHarbor` controller: one reconcile turns a resource into its
//! children and its status.
//!
//! Flow (shaped like kube-rs/controller-rs): finalizer → validate → build
//! (pure, `build.rs`) → server-side apply (`apply.rs`) → status
//! (`status.rs`). Invalid specs wait for a change; API errors back off
//! exponentially per object; success requeues for a periodic resync. The
//! owned children are watched through label-filtered reflectors whose caches
//! double as the "is anything different?" check that keeps a resync free of
//! writes.

pub mod apply;
pub mod build;
pub mod status;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Recorder, Reporter},
        finalizer::{Event as Finalizer, finalizer},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::{
    crd::{InvalidSpec, TaskHarbor},
    metrics::Metrics,
};
use build::{BuildConfig, BuildError, MANAGED_BY_LABEL, MANAGER, TENANT_LABEL};
use status::Observed;

/// Finalizer that keeps the resource until its volume policy has been applied.
pub const FINALIZER: &str = "taskharbor.dev/cleanup";

/// Failures of one reconcile. The `metric_label` of each is a static string.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    #[error("could not serialize an object: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("finalizer step failed: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Static label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(_) => "kube_api",
            Error::Serialize(_) => "serialize",
            Error::Build(_) => "build",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
        }
    }
}

/// Settings of the controller (from command-line flags in `main`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub build: BuildConfig,
    /// Watch only this namespace; all namespaces when None.
    pub namespace: Option<String>,
    /// Periodic resync of a healthy resource.
    pub resync: Duration,
    /// First retry delay after a transient error; doubles per failure.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Reported as the event source instance (usually the pod name).
    pub instance: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            build: BuildConfig::default(),
            namespace: None,
            resync: Duration::from_secs(300),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            instance: None,
        }
    }
}

/// Caches of the children, filtered to objects this operator manages.
#[derive(Clone)]
pub struct Stores {
    pub secrets: Store<Secret>,
    pub stateful_sets: Store<StatefulSet>,
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
    pub network_policies: Store<NetworkPolicy>,
}

impl Stores {
    async fn wait_until_ready(&self) {
        // Before the first list completes every cache is empty and each
        // reconcile would re-apply everything; waiting avoids that burst.
        // Bounded, so a watch that cannot list (RBAC) degrades to extra
        // writes instead of a controller that hangs.
        let all = async {
            let _ = self.secrets.wait_until_ready().await;
            let _ = self.stateful_sets.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            let _ = self.ingresses.wait_until_ready().await;
            let _ = self.network_policies.wait_until_ready().await;
        };
        if tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .is_err()
        {
            warn!("child caches not synced after 30 s; reconciling without them");
        }
    }
}

/// State shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub stores: Stores,
    /// Consecutive failures per resource, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<TaskHarbor>, u32>>,
}

impl Context {
    fn reset_backoff(&self, th: &TaskHarbor) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ObjectRef::from_obj(th));
        }
    }

    fn next_backoff(&self, th: &TaskHarbor) -> Duration {
        let count = match self.failures.lock() {
            Ok(mut failures) => {
                let entry = failures.entry(ObjectRef::from_obj(th)).or_insert(0);
                *entry = entry.saturating_add(1);
                *entry
            }
            Err(_) => 1,
        };
        backoff_delay(self.settings.backoff_base, self.settings.backoff_max, count)
    }
}

/// `base * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max)
}

fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Reconciles one `TaskHarbor`.
pub async fn reconcile(th: Arc<TaskHarbor>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    ctx.stores.wait_until_ready().await;
    let namespace = th.namespace().unwrap_or_default();
    let api: Api<TaskHarbor> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, th.clone(), |event| async {
        match event {
            Finalizer::Apply(th) => apply_tenant(&th, &ctx).await,
            Finalizer::Cleanup(th) => cleanup(&th, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => ctx.reset_backoff(&th),
        Err(err) => ctx
            .metrics
            .failures
            .with_label_values(&[err.metric_label()])
            .inc(),
    }
    result
}

/// Transient failure: retry this object later, doubling the delay each time.
pub fn error_policy(th: Arc<TaskHarbor>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&th);
    warn!(name = %th.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// A spec problem: Degraded status + Warning event, then wait for a new spec.
async fn degrade(
    th: &TaskHarbor,
    ctx: &Context,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    ctx.metrics
        .failures
        .with_label_values(&["invalid_spec"])
        .inc();
    let namespace = th.namespace().unwrap_or_default();
    let status = status::compute(
        th,
        build::url(th, &namespace),
        &Observed::Invalid { reason, message },
        &now_rfc3339(),
    );
    status::patch_if_changed(ctx, th, status).await?;
    Ok(Action::await_change())
}

async fn apply_tenant(th: &TaskHarbor, ctx: &Context) -> Result<Action, Error> {
    let namespace = th.namespace().unwrap_or_default();
    let uid = th.uid().ok_or(BuildError::MissingMetadata("uid"))?;
    if let Err(invalid) = th
        .spec
        .validate()
        .and_then(|()| check_tenant_unchanged(th, ctx, &uid))
    {
        return degrade(th, ctx, "InvalidSpec", invalid.to_string()).await;
    }
    let tenant = &th.spec.tenant;
    let secrets = apply::tenant_secrets(ctx, &namespace, tenant).await?;
    let desired = build::build(th, &ctx.settings.build, &secrets)?;

    let stores = &ctx.stores;
    // Every child is attempted even when one fails, so one refused object
    // (say, a Service when the cluster is out of ClusterIPs) does not hold
    // back the others; the first error then triggers the backoff.
    let mut first_error: Option<Error> = None;
    let mut note = |result: Result<(), Error>| {
        if let Err(err) = result {
            warn!(name = %th.name_any(), error = %err, "applying a child failed");
            first_error.get_or_insert(err);
        }
    };
    // The Secret goes first: the pod reads its token from it.
    note(
        apply::apply(ctx, &stores.secrets, desired.secret, "secret")
            .await
            .map(drop),
    );
    note(
        apply::apply(ctx, &stores.services, desired.service, "service")
            .await
            .map(drop),
    );
    note(
        apply::apply(
            ctx,
            &stores.network_policies,
            desired.network_policy,
            "networkpolicy",
        )
        .await
        .map(drop),
    );
    match desired.ingress {
        Some(ingress) => {
            note(
                apply::apply(ctx, &stores.ingresses, ingress, "ingress")
                    .await
                    .map(drop),
            );
        }
        None => {
            let name = build::child_name(tenant);
            note(
                apply::delete_owned(ctx, &stores.ingresses, &namespace, &name, &uid, "ingress")
                    .await,
            );
        }
    }
    let sts = match apply::apply(
        ctx,
        &stores.stateful_sets,
        desired.stateful_set,
        "statefulset",
    )
    .await
    {
        Ok(sts) => sts,
        // 422: the API server will never accept this StatefulSet (for example a
        // changed volume size, which is immutable); retrying cannot help.
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
            return degrade(
                th,
                ctx,
                "Rejected",
                format!("the StatefulSet was rejected: {}", status.message),
            )
            .await;
        }
        Err(err) => return Err(first_error.unwrap_or(err)),
    };
    if let Some(err) = first_error {
        return Err(err);
    }

    let status = status::compute(
        th,
        build::url(th, &namespace),
        &Observed::Applied(&sts),
        &now_rfc3339(),
    );
    status::patch_if_changed(ctx, th, status).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

/// `spec.tenant` names every child; a change would orphan the old pod and
/// volume, so it is refused (the CRD cannot say so without CEL on 1.20).
fn check_tenant_unchanged(th: &TaskHarbor, ctx: &Context, uid: &str) -> Result<(), InvalidSpec> {
    let namespace = th.namespace().unwrap_or_default();
    let previous = ctx.stores.stateful_sets.find(|sts| {
        sts.namespace().as_deref() == Some(namespace.as_str())
            && build::is_owned_by(&sts.metadata, uid)
            && sts.labels().get(TENANT_LABEL) != Some(&th.spec.tenant)
    });
    match previous.and_then(|sts| sts.labels().get(TENANT_LABEL).cloned()) {
        Some(previous) => Err(InvalidSpec::TenantChanged { previous }),
        None => Ok(()),
    }
}

async fn cleanup(th: &TaskHarbor, ctx: &Context) -> Result<Action, Error> {
    let namespace = th.namespace().unwrap_or_default();
    let status = status::compute(
        th,
        build::url(th, &namespace),
        &Observed::Deleting,
        &now_rfc3339(),
    );
    status::patch_if_changed(ctx, th, status).await?;
    if th.spec.storage.retain_on_delete {
        info!(name = %th.name_any(), "keeping the data volume (retainOnDelete)");
    } else {
        apply::delete_data_claim(ctx, &namespace, &th.spec.tenant).await?;
    }
    // Everything else is owned by the resource and garbage-collected.
    Ok(Action::await_change())
}

fn child_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A label-filtered, managedFields-stripped watch of one child kind, cached in
/// a reflector store; the stream also triggers reconciles of the owner.
fn child_watch<K>(
    client: &Client,
    namespace: Option<&str>,
) -> (
    Store<K>,
    impl futures_util::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let stream = watcher(child_api::<K>(client, namespace), config)
        .default_backoff()
        .modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// Runs the controller until `shutdown` resolves, then lets in-flight
/// reconciles finish.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.clone();
    let ns = ns.as_deref();
    let resources: Api<TaskHarbor> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (secrets, secret_events) = child_watch::<Secret>(&client, ns);
    let (stateful_sets, sts_events) = child_watch::<StatefulSet>(&client, ns);
    let (services, service_events) = child_watch::<Service>(&client, ns);
    let (ingresses, ingress_events) = child_watch::<Ingress>(&client, ns);
    let (network_policies, np_events) = child_watch::<NetworkPolicy>(&client, ns);
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: settings.instance.clone(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        settings,
        metrics,
        stores: Stores {
            secrets,
            stateful_sets,
            services,
            ingresses,
            network_policies,
        },
        failures: Mutex::new(HashMap::new()),
    });
    info!("controller starting");
    Controller::new(resources, watcher::Config::default().any_semantic())
        .owns_stream(secret_events)
        .owns_stream(sts_events)
        .owns_stream(service_events)
        .owns_stream(ingress_events)
        .owns_stream(np_events)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "controller event");
            }
        })
        .await;
    info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        assert_eq!(backoff_delay(base, max, 1), Duration::from_secs(2));
        assert_eq!(backoff_delay(base, max, 2), Duration::from_secs(4));
        assert_eq!(backoff_delay(base, max, 4), Duration::from_secs(16));
        assert_eq!(backoff_delay(base, max, 10), max);
        assert_eq!(backoff_delay(base, max, u32::MAX), max);
    }
}
