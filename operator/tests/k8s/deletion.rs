//! Suspend and the two data-retention policies on delete.

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{PersistentVolumeClaim, Secret, Service},
};
use kube::{Api, Client, api::DeleteParams};
use serde_json::json;
use taskharbor_operator::crd::{Phase, TaskHarbor};
use taskharbor_tests::k8s::{ControlPlane, Operator, TIMEOUT, eventually, namespace};

use crate::lifecycle::{create, get, patch_spec, phase, wait_for, wait_status};

async fn gone<K>(client: &Client, ns: &str, name: &str, what: &str)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    eventually(TIMEOUT, what, || async {
        get::<K>(client, ns, name).await.is_none().then_some(())
    })
    .await;
}

pub async fn suspend_scales_to_zero_and_keeps_the_claim() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "suspend").await;
    let op = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    create(
        &client,
        &ns,
        "nap",
        json!({"tenant": "nap", "version": "0.1.0"}),
    )
    .await;
    let pvc: PersistentVolumeClaim = wait_for(&client, &ns, "data-th-nap-0").await;
    patch_spec(&client, &ns, "nap", json!({"suspend": true})).await;
    eventually(TIMEOUT, "replicas 0", || async {
        let sts: StatefulSet = get(&client, &ns, "th-nap").await?;
        (sts.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    wait_status(&client, &ns, "nap", "Suspended", |th| {
        phase(th) == Some(Phase::Suspended)
    })
    .await;
    let kept: PersistentVolumeClaim = get(&client, &ns, "data-th-nap-0")
        .await
        .expect("claim kept while suspended");
    assert_eq!(kept.metadata.uid, pvc.metadata.uid);
    assert!(kept.metadata.deletion_timestamp.is_none());
    // Resuming scales back up onto the same claim.
    patch_spec(&client, &ns, "nap", json!({"suspend": false})).await;
    eventually(TIMEOUT, "replicas 1", || async {
        let sts: StatefulSet = get(&client, &ns, "th-nap").await?;
        (sts.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    op.stop().await;
}

pub async fn delete_with_retain_keeps_the_claim_and_collects_the_rest() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "retain").await;
    let op = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    create(
        &client,
        &ns,
        "keep",
        json!({"tenant": "keep", "version": "0.1.0"}),
    )
    .await;
    let pvc: PersistentVolumeClaim = wait_for(&client, &ns, "data-th-keep-0").await;
    let th: TaskHarbor = wait_status(&client, &ns, "keep", "finalizer added", |th| {
        th.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "taskharbor.dev/cleanup")
    })
    .await;
    assert!(th.spec.storage.retain_on_delete);
    Api::<TaskHarbor>::namespaced(client.clone(), &ns)
        .delete("keep", &DeleteParams::default())
        .await
        .expect("deleted");
    gone::<TaskHarbor>(&client, &ns, "keep", "TaskHarbor gone (finalizer removed)").await;
    gone::<StatefulSet>(&client, &ns, "th-keep", "StatefulSet garbage-collected").await;
    gone::<Service>(&client, &ns, "th-keep", "Service garbage-collected").await;
    gone::<Secret>(&client, &ns, "th-keep", "Secret garbage-collected").await;
    let kept: PersistentVolumeClaim = get(&client, &ns, "data-th-keep-0")
        .await
        .expect("claim retained");
    assert_eq!(kept.metadata.uid, pvc.metadata.uid);
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "retained claim must not be terminating"
    );
    op.stop().await;
}

pub async fn delete_without_retain_removes_the_claim() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "purge").await;
    let op = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    create(
        &client,
        &ns,
        "bye",
        json!({"tenant": "bye", "version": "0.1.0", "storage": {"retainOnDelete": false}}),
    )
    .await;
    let _: PersistentVolumeClaim = wait_for(&client, &ns, "data-th-bye-0").await;
    wait_status(&client, &ns, "bye", "finalizer added", |th| {
        th.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "taskharbor.dev/cleanup")
    })
    .await;
    Api::<TaskHarbor>::namespaced(client.clone(), &ns)
        .delete("bye", &DeleteParams::default())
        .await
        .expect("deleted");
    gone::<TaskHarbor>(&client, &ns, "bye", "TaskHarbor gone").await;
    gone::<StatefulSet>(&client, &ns, "th-bye", "StatefulSet garbage-collected").await;
    gone::<PersistentVolumeClaim>(&client, &ns, "data-th-bye-0", "claim deleted").await;
    op.stop().await;
}
