//! Test harness: one real control plane (etcd + kube-apiserver +
//! kube-controller-manager v1.20) per test process, a namespace per test, and
//! the operator running in-process as tokio tasks.
//!
//! The control plane comes from `shared/k8s/k8s-control-plane.sh` next to the
//! repository. It listens on free loopback ports in a private run directory,
//! so concurrent test processes (or a leftover from a killed run) cannot
//! collide, and a watchdog process stops it if this process dies without
//! cleaning up.

mod chart;
mod cluster;
mod operator;
mod suite;

use std::{
    future::Future,
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

pub use chart::{allowed, hardened_pod_spec, install_chart};
pub use cluster::{
    ControlPlane, StartOptions, install_crd, namespace, repo_root, shared_k8s_dir, unique,
};
pub use operator::Operator;
pub use suite::{run, trial};

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `probe` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Marks the tenant pod Running and Ready through its status subresource, as
/// a kubelet would (there is no kubelet); the StatefulSet controller then
/// reports it ready and the operator moves the tenant to `Ready`.
pub async fn simulate_pod_ready(client: &Client, namespace: &str, pod: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
        ],
        "containerStatuses": [{
            "name": "taskharbor", "ready": true, "started": true, "restartCount": 0,
            "image": "ghcr.io/taskharbor/taskharbor", "imageID": "",
            "state": {"running": {"startedAt": now}}
        }]
    }});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("pod status patched");
}
