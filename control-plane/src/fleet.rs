//! The cluster side: creating, suspending and deleting `TaskHarbor`
//! resources (the operator's own types), reading a tenant's bootstrap token
//! from its Secret, and the follower that records phase transitions until
//! (and after) `Ready`.
//!
//! With `--kube=off` there is no client; approvals render YAML instead.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use secrecy::SecretString;
use serde_json::json;
use sqlx::SqlitePool;
use taskharbor_operator::{
    controller::build::BOOTSTRAP_TOKEN_KEY,
    crd::{TaskHarbor, TaskHarborSpec},
};
use tokio::sync::watch;

use crate::{
    metrics::Metrics,
    store::{self, PhaseChange},
};

/// Field manager / creator name recorded on the resources we write.
pub const MANAGER: &str = "taskharbor-control-plane";
/// Annotation naming the signup a resource was created for: it makes
/// creation idempotent (a 409 on a resource carrying our signup id is our
/// own earlier create, not someone else's tenant).
pub const SIGNUP_ANNOTATION: &str = "taskharbor.dev/signup-id";
/// The timer repair leaves approvals younger than this to the request that
/// is still creating their resource.
pub const REPAIR_MIN_AGE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("a TaskHarbor named {0:?} already exists in the cluster")]
    AlreadyExists(String),
    #[error("no TaskHarbor named {0:?} in the cluster")]
    NotFound(String),
    #[error("the tenant Secret has no {BOOTSTRAP_TOKEN_KEY:?} yet")]
    NoToken,
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The resource the control plane creates for an approved tenant: named
/// after the tenant, in the tenants namespace, annotated with its signup.
pub fn resource(tenant: &str, spec: TaskHarborSpec, namespace: &str, signup_id: i64) -> TaskHarbor {
    let mut th = TaskHarbor::new(tenant, spec);
    th.metadata.namespace = Some(namespace.to_owned());
    th.metadata.annotations = Some([(SIGNUP_ANNOTATION.to_owned(), signup_id.to_string())].into());
    th.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        )]
        .into(),
    );
    th
}

/// YAML to apply by hand (`--kube=off`).
pub fn resource_yaml(th: &TaskHarbor) -> Result<String, serde_yaml::Error> {
    let mut value = serde_yaml::to_value(th)?;
    // Status belongs to the operator; keep the manifest to what a user applies.
    if let serde_yaml::Value::Mapping(map) = &mut value {
        map.remove("status");
    }
    serde_yaml::to_string(&value)
}

impl Cluster {
    fn api(&self) -> Api<TaskHarbor> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Creates the resource. Idempotent: when it already exists with the
    /// same signup annotation (an earlier attempt, or the repair, got there
    /// first), that is success.
    pub async fn create(&self, th: &TaskHarbor) -> Result<(), ClusterError> {
        let params = PostParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PostParams::default()
        };
        let name = th.metadata.name.clone().unwrap_or_default();
        match self.api().create(&params, th).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => {
                let ours = |t: &TaskHarbor| {
                    t.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(SIGNUP_ANNOTATION))
                        .cloned()
                };
                let existing = self.api().get_opt(&name).await?;
                match existing {
                    Some(live) if ours(&live).is_some() && ours(&live) == ours(th) => Ok(()),
                    _ => Err(ClusterError::AlreadyExists(name)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_suspend(&self, tenant: &str, suspend: bool) -> Result<(), ClusterError> {
        let patch = json!({"spec": {"suspend": suspend}});
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match self
            .api()
            .patch(tenant, &params, &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(ClusterError::NotFound(tenant.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the resource; the operator's finalizer removes the children
    /// (keeping the volume when `retainOnDelete`). Already gone is fine.
    pub async fn delete(&self, tenant: &str) -> Result<(), ClusterError> {
        match self.api().delete(tenant, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The bootstrap admin token the operator stored in `th-<tenant>`.
    pub async fn bootstrap_token(&self, tenant: &str) -> Result<SecretString, ClusterError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret = match secrets.get(&format!("th-{tenant}")).await {
            Ok(s) => s,
            Err(e) if is_status(&e, 404) => return Err(ClusterError::NoToken),
            Err(e) => return Err(e.into()),
        };
        let bytes = secret
            .data
            .and_then(|mut d| d.remove(BOOTSTRAP_TOKEN_KEY))
            .ok_or(ClusterError::NoToken)?;
        let token = String::from_utf8(bytes.0).map_err(|_| ClusterError::NoToken)?;
        if token.is_empty() {
            return Err(ClusterError::NoToken);
        }
        Ok(SecretString::from(token))
    }

    /// Phases of every `TaskHarbor` in the namespace, by name.
    async fn phases(&self) -> Result<Vec<(String, Option<String>)>, kube::Error> {
        let list = self.api().list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|th| {
                let phase = th
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map(|p| p.as_str().to_owned());
                th.metadata.name.map(|n| (n, phase))
            })
            .collect())
    }
}

/// One pass of the follower: records the phase of every followed tenant.
pub async fn sync_once(
    cluster: &Cluster,
    pool: &SqlitePool,
    metrics: &Metrics,
    reveal_ttl: Duration,
) -> Result<(), String> {
    let followed = store::followed_tenants(pool)
        .await
        .map_err(|e| e.to_string())?;
    if followed.is_empty() {
        return Ok(());
    }
    let phases = cluster.phases().await.map_err(|e| {
        metrics.error("kube");
        e.to_string()
    })?;
    for tenant in followed {
        let Some((_, phase)) = phases.iter().find(|(name, _)| *name == tenant) else {
            continue;
        };
        let Some(phase) = phase else { continue };
        match store::record_phase(pool, &tenant, phase, reveal_ttl).await {
            Ok(PhaseChange::FirstReady { provisioning_ms }) => {
                metrics
                    .provisioning
                    .observe(provisioning_ms as f64 / 1000.0);
                tracing::info!(%tenant, provisioning_ms, "tenant ready");
            }
            Ok(PhaseChange::Changed) => tracing::info!(%tenant, phase, "tenant phase changed"),
            Ok(PhaseChange::Unchanged) => {}
            Err(e) => {
                metrics.error("database");
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

/// Completes approvals that were recorded but whose resource was never
/// created (the process died between the two steps): creates each resource
/// (idempotently) and records it. Returns how many were repaired.
pub async fn repair_once(
    cluster: &Cluster,
    pool: &SqlitePool,
    tenant_version: &str,
    min_age: Duration,
) -> Result<usize, String> {
    let pending = store::unprovisioned(pool, min_age)
        .await
        .map_err(|e| e.to_string())?;
    let mut repaired = 0;
    for (tenant, signup_id) in pending {
        let spec =
            crate::domain::tenant_spec(&tenant, tenant_version).map_err(|e| e.to_string())?;
        let th = resource(&tenant, spec, &cluster.namespace, signup_id);
        match cluster.create(&th).await {
            Ok(()) => {
                store::mark_resource_created(pool, &tenant)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(%tenant, "completed an interrupted approval: resource created");
                repaired += 1;
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "repairing an interrupted approval failed")
            }
        }
    }
    Ok(repaired)
}

/// What the follower needs besides the cluster and the database.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    pub interval: Duration,
    pub reveal_ttl: Duration,
    /// Version given to resources re-created by the repair.
    pub tenant_version: String,
}

/// Repairs interrupted approvals at once (nothing else in this process is
/// creating resources yet), then every `interval` runs [`sync_once`] and
/// the repair of approvals older than [`REPAIR_MIN_AGE`], until `shutdown`
/// turns true. A list per interval (rather than a watch per tenant) keeps
/// the follower simple and restart-safe: the database says which tenants
/// to follow.
pub async fn follow(
    cluster: Cluster,
    pool: SqlitePool,
    metrics: Metrics,
    settings: FollowSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let FollowSettings {
        interval,
        reveal_ttl,
        tenant_version,
    } = settings;
    let mut min_age = Duration::ZERO;
    loop {
        if let Err(e) = repair_once(&cluster, &pool, &tenant_version, min_age).await {
            metrics.error("database");
            tracing::warn!(error = %e, "approval repair failed; retrying");
        }
        min_age = REPAIR_MIN_AGE;
        if let Err(e) = sync_once(&cluster, &pool, &metrics, reveal_ttl).await {
            tracing::warn!(error = %e, "fleet sync failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
