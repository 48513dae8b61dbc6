//! (c) An online backup of a running hosted tenant (`taskharbor backup`
//! run in its pod while it serves) restored into a new tenant, the way
//! docs/operator.md describes it: the new tenant's Secret carries the old
//! one's keys, and its claim is bound to a volume holding the copy before
//! the resource is created. Data identical, tokens of the old tenant work.

use std::os::unix::fs::{PermissionsExt, chown};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::{Api, api::PostParams};
use serde_json::json;
use taskharbor_operator::crd::{TaskHarbor, TaskHarborSpec};
use taskharbor_tests::k8s::{ControlPlane, Operator, namespace, unique};

use crate::{
    lifecycle::OPERATOR_FLAGS,
    support::{Fleet, Tenant, exec, pod_url, ready_pod},
};

fn resource(ns: &str, tenant: &str) -> TaskHarbor {
    let spec: TaskHarborSpec =
        serde_json::from_value(json!({"tenant": tenant, "version": "0.1.0"})).expect("spec");
    let mut th = TaskHarbor::new(tenant, spec);
    th.metadata.namespace = Some(ns.to_owned());
    th
}

pub async fn online_backup_of_a_running_tenant_restores_into_a_new_tenant() {
    let fleet = Fleet::get();
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "backup").await;
    let source_pv = unique("backup-src");
    fleet.node.pv(&source_pv, "1Gi");
    let operator = Operator::start(client.clone(), &ns, OPERATOR_FLAGS);
    let resources: Api<TaskHarbor> = Api::namespaced(client.clone(), &ns);
    resources
        .create(&PostParams::default(), &resource(&ns, "orig"))
        .await
        .expect("tenant created");
    let pod = ready_pod(&client, &ns, "th-orig-0", |_| true).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = secrets.get("th-orig").await.expect("tenant Secret");
    let data = secret.data.clone().expect("secret data");
    let token = String::from_utf8(data["bootstrap-token"].0.clone()).expect("utf-8");
    let original = Tenant {
        base: pod_url(&pod),
        token,
    };
    let board = original
        .seed("ORIG", &["alpha", "beta", "gamma", "delta"])
        .await;
    let before = original.items(board).await;

    // Online: the server keeps serving while the copy is taken in its pod.
    let out = exec(
        &ns,
        "th-orig-0",
        &["taskharbor", "backup", "/data/backup-1.db"],
    );
    assert!(out.contains("backup written"), "{out}");
    original.assert_serves_as_admin().await;
    let copy = fleet.node.pv_dir(&source_pv).join("backup-1.db");
    assert!(copy.exists(), "backup on the tenant's volume");

    // Restore: the copy goes onto a fresh volume as taskharbor.db, owned
    // by the tenant's uid (a one-off pod would do this in a real cluster).
    let target_pv = unique("backup-dst");
    fleet.node.pv(&target_pv, "1Gi");
    let target_dir = fleet.node.pv_dir(&target_pv);
    let restored_db = target_dir.join("taskharbor.db");
    std::fs::copy(&copy, &restored_db).expect("copy into the new volume");
    for path in [&target_dir, &restored_db] {
        chown(path, Some(65532), Some(65532)).expect("chown");
    }
    std::fs::set_permissions(&target_dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    // The new tenant's claim, bound to that volume, under the name the
    // StatefulSet will look for.
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data-th-restored-0", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": target_pv,
                 "storageClassName": "",
                 "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("claim");
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim created");
    // The old tenant's keys: its tokens (hashed in the copy) and the key
    // that decrypts its stored secrets.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "th-restored", "namespace": ns},
        "data": {
            "bootstrap-token": data["bootstrap-token"],
            "secret-key": data["secret-key"],
        }
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("restored Secret created");
    resources
        .create(&PostParams::default(), &resource(&ns, "restored"))
        .await
        .expect("restored tenant created");
    let pod = ready_pod(&client, &ns, "th-restored-0", |_| true).await;
    let restored = Tenant {
        base: pod_url(&pod),
        token: original.token.clone(),
    };
    restored.assert_serves_as_admin().await;
    assert_eq!(restored.items(board).await, before, "restored data differs");
    // The original keeps running, unaffected.
    assert_eq!(original.items(board).await, before);
    operator.stop().await;
}
