//! The Helm chart: offline checks (`chart-check.sh`), a real `helm install`
//! into the test API server, and the operator running with exactly the
//! chart's RBAC (by impersonating its ServiceAccount).

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{PersistentVolumeClaim, Secret, Service},
    networking::v1::NetworkPolicy,
};
use kube::{Api, api::DeleteParams};
use serde_json::json;
use taskharbor_operator::crd::{Phase, TaskHarbor};
use taskharbor_tests::k8s::{
    Operator, TIMEOUT, allowed, eventually, hardened_pod_spec, install_chart,
};

use crate::lifecycle::{create, get, phase, wait_for, wait_status};

pub async fn chart_passes_chart_check_and_installs_with_working_rbac() {
    let (cp, admin, release_ns, tenants_ns) = install_chart(
        "taskharbor-operator",
        ".ci/operator-prereqs.sh",
        "op",
        "chart",
        "watchNamespace",
    )
    .await;
    let deployment: Deployment = wait_for(&admin, &release_ns, "op-taskharbor-operator").await;
    let pod = hardened_pod_spec(deployment);
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("op-taskharbor-operator")
    );

    // The operator, acting as the chart's ServiceAccount, can do its whole job...
    let sa = format!("system:serviceaccount:{release_ns}:op-taskharbor-operator");
    let operator_client = cp.impersonating(&sa).await;
    assert!(
        !allowed(&operator_client, "create", "", "pods", Some(&tenants_ns)).await,
        "no pod creation"
    );
    assert!(
        !allowed(&operator_client, "delete", "", "namespaces", None).await,
        "no namespace deletion"
    );
    assert!(
        !allowed(&operator_client, "list", "", "secrets", Some(&release_ns)).await,
        "no secrets outside the watched namespace"
    );
    assert!(
        allowed(
            &operator_client,
            "patch",
            "apps",
            "statefulsets",
            Some(&tenants_ns)
        )
        .await
    );

    let op = Operator::start(
        operator_client,
        &tenants_ns,
        &["--lease-namespace", &release_ns, "--lease-seconds", "3"],
    );
    create(&admin, &tenants_ns, "rbac", json!({"tenant": "rbac", "version": "0.1.0", "host": "rbac.example.com", "storage": {"retainOnDelete": false}})).await;
    let _: StatefulSet = wait_for(&admin, &tenants_ns, "th-rbac").await;
    let _: Secret = wait_for(&admin, &tenants_ns, "th-rbac").await;
    let _: Service = wait_for(&admin, &tenants_ns, "th-rbac").await;
    let _: NetworkPolicy = wait_for(&admin, &tenants_ns, "th-rbac").await;
    wait_status(&admin, &tenants_ns, "rbac", "status written", |th| {
        matches!(phase(th), Some(Phase::Pending | Phase::Provisioning))
    })
    .await;
    let _: PersistentVolumeClaim = wait_for(&admin, &tenants_ns, "data-th-rbac-0").await;
    Api::<TaskHarbor>::namespaced(admin.clone(), &tenants_ns)
        .delete("rbac", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually(TIMEOUT, "claim deleted by the finalizer", || async {
        get::<PersistentVolumeClaim>(&admin, &tenants_ns, "data-th-rbac-0")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        op.metrics.failures.with_label_values(&["kube_api"]).get(),
        0,
        "no API call was forbidden"
    );
    op.stop().await;
}
