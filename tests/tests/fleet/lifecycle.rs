//! (b) A hosted tenant's whole life on real pods: control plane signup →
//! approve → the operator's StatefulSet → the pod runs the image → one-time
//! reveal → that token works on the pod; items survive a pod deletion, a
//! version upgrade (a second image tag) and suspend/resume; deleting the
//! tenant keeps its volume (default `retainOnDelete`). Also the idle-density
//! measurement (`FLEET_DENSITY=N`).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use taskharbor_operator::crd::{TaskHarbor, TaskHarborSpec};
use taskharbor_tests::k8s::{ControlPlane, Operator, eventually, namespace, unique};

use crate::{
    cp::ControlPlaneProcess,
    support::{Fleet, POD_TIMEOUT, Tenant, figure, pod_gone, pod_memory, pod_url, ready_pod, uid},
};

/// Operator flags for the fleet: tenant pods from the imported image.
pub const OPERATOR_FLAGS: &[&str] = &[
    "--leader-elect",
    "false",
    "--default-image",
    "localhost/taskharbor",
];

pub async fn signup_to_running_tenant_then_restart_upgrade_suspend_and_delete_keep_the_data() {
    let fleet = Fleet::get();
    let cp = ControlPlane::get();
    let client = cp.client().await;
    let ns = namespace(&client, "life").await;
    fleet.node.pv(&unique("life"), "1Gi");
    let operator = Operator::start(client.clone(), &ns, OPERATOR_FLAGS);
    let data = tempfile::tempdir().expect("temp dir");
    let control_plane = ControlPlaneProcess::start(data.path(), &cp.kubeconfig, &ns, &[]).await;

    // Signup → approve → the operator → a real pod.
    let id = control_plane.signup("life@example.com").await;
    let approved_at = Instant::now();
    let url = control_plane.approve(id, "life").await;
    let pod_name = "th-life-0";
    let pod = ready_pod(&client, &ns, pod_name, |_| true).await;
    figure(&format!(
        "tenant pod: approve (resource created) -> pod Ready in {:.1} s",
        approved_at.elapsed().as_secs_f64()
    ));
    let image = pod.spec.as_ref().map(|s| s.containers[0].image.clone());
    assert_eq!(image, Some(Some("localhost/taskharbor:0.1.0".into())));

    // The one-time reveal, and that token on the pod.
    let token = control_plane.reveal_when_ready("life", &url).await;
    let tenant = Tenant {
        base: pod_url(&pod),
        token,
    };
    tenant.assert_serves_as_admin().await;
    let board = tenant.seed("LIFE", &["first", "second", "third"]).await;
    let items = tenant.items(board).await;
    assert_eq!(items.len(), 3);
    if let Some((working_set, rss)) = pod_memory(&pod) {
        figure(&format!(
            "idle tenant pod after a few requests: working set {:.1} MiB, RSS {:.1} MiB (pod cgroup)",
            working_set as f64 / 1048576.0,
            rss as f64 / 1048576.0
        ));
    }

    // Delete the pod: the StatefulSet brings it back on the same volume.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let old = uid(&pod);
    pods.delete(pod_name, &DeleteParams::default())
        .await
        .expect("pod deleted");
    let pod = ready_pod(&client, &ns, pod_name, |p| uid(p) != old).await;
    let tenant = Tenant {
        base: pod_url(&pod),
        ..tenant
    };
    assert_eq!(tenant.items(board).await, items, "data after pod deletion");

    // Upgrade: a second image tag; the pod rolls and keeps the data.
    fleet.tag_tenant_image("0.1.1-fleet");
    let resources: Api<TaskHarbor> = Api::namespaced(client.clone(), &ns);
    let old = uid(&pod);
    resources
        .patch(
            "life",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "0.1.1-fleet"}})),
        )
        .await
        .expect("version patched");
    let pod = ready_pod(&client, &ns, pod_name, |p| {
        uid(p) != old
            && p.spec.as_ref().map(|s| s.containers[0].image.clone())
                == Some(Some("localhost/taskharbor:0.1.1-fleet".into()))
    })
    .await;
    let tenant = Tenant {
        base: pod_url(&pod),
        ..tenant
    };
    assert_eq!(tenant.items(board).await, items, "data after the upgrade");

    // Suspend: no pod; resume: the data is still there.
    let (status, body) = control_plane
        .admin(
            reqwest::Method::POST,
            "/api/admin/tenants/life/suspend",
            None,
        )
        .await;
    assert!(status < 300, "{body}");
    pod_gone(&client, &ns, pod_name).await;
    let (status, body) = control_plane
        .admin(
            reqwest::Method::POST,
            "/api/admin/tenants/life/resume",
            None,
        )
        .await;
    assert!(status < 300, "{body}");
    let pod = ready_pod(&client, &ns, pod_name, |_| true).await;
    let tenant = Tenant {
        base: pod_url(&pod),
        ..tenant
    };
    assert_eq!(
        tenant.items(board).await,
        items,
        "data after suspend/resume"
    );

    // Delete with the default retain policy: the resource and pod go, the volume stays.
    let (status, body) = control_plane
        .admin(reqwest::Method::DELETE, "/api/admin/tenants/life", None)
        .await;
    assert!(status < 300, "{body}");
    eventually(POD_TIMEOUT, "TaskHarbor deleted", || async {
        resources
            .get_opt("life")
            .await
            .ok()
            .and_then(|r| r.is_none().then_some(()))
    })
    .await;
    pod_gone(&client, &ns, pod_name).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let claim = claims
        .get("data-th-life-0")
        .await
        .expect("the volume claim is kept");
    assert!(claim.metadata.deletion_timestamp.is_none());

    let histogram = operator.metrics.duration.clone();
    figure(&format!(
        "operator reconcile with real pods: {} reconciles, mean {:.1} ms",
        histogram.get_sample_count(),
        histogram.get_sample_sum() * 1000.0 / histogram.get_sample_count().max(1) as f64
    ));
    operator.stop().await;
}

/// Starts `pods` idle tenants through the operator, measures how long each
/// took from apply to Ready and what the node sees in their cgroups, and
/// extrapolates pods per GiB (said so in the figure).
pub async fn idle_density(pods: usize) {
    let fleet = Fleet::get();
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "density").await;
    let operator = Operator::start(client.clone(), &ns, OPERATOR_FLAGS);
    let resources: Api<TaskHarbor> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    for i in 0..pods {
        fleet.node.pv(&unique("density"), "1Gi");
        let spec: TaskHarborSpec = serde_json::from_value(
            json!({"tenant": format!("idle{i}"), "version": "0.1.0", "storage": {"size": "1Gi"}}),
        )
        .expect("spec");
        let mut th = TaskHarbor::new(&format!("idle{i}"), spec);
        th.metadata.namespace = Some(ns.clone());
        resources
            .create(&PostParams::default(), &th)
            .await
            .expect("resource created");
    }
    let mut ready = Vec::new();
    for i in 0..pods {
        ready.push(ready_pod(&client, &ns, &format!("th-idle{i}-0"), |_| true).await);
    }
    figure(&format!(
        "{pods} tenants applied at once -> all pods Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    // Let start-up allocations settle, then read every pod's cgroup.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let samples: Vec<(u64, u64)> = ready.iter().filter_map(pod_memory).collect();
    assert_eq!(samples.len(), pods, "every pod's cgroup readable");
    let mean_ws = samples.iter().map(|s| s.0).sum::<u64>() as f64 / pods as f64;
    let mean_rss = samples.iter().map(|s| s.1).sum::<u64>() as f64 / pods as f64;
    // Each pod also costs the node a pause container and containerd-shim.
    figure(&format!(
        "{pods} idle tenant pods: mean working set {:.1} MiB, mean RSS {:.1} MiB per pod (pod cgroups); \
         extrapolated {:.0} idle pods per GiB of pod memory (measured with {pods}, not run at that count; \
         excludes the ~30 MB per pod of shim and kubelet overhead the node README quotes)",
        mean_ws / 1048576.0,
        mean_rss / 1048576.0,
        1073741824.0 / mean_ws
    ));
    resources
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .expect("cleanup");
    operator.stop().await;
}
