//! The Helm chart: offline checks (`chart-check.sh`), a real `helm install`
//! into the test API server, and the operator running with exactly the
//! chart's RBAC (by impersonating its ServiceAccount).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::{PersistentVolumeClaim, Secret, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use taskharbor_operator::crd::{Phase, TaskHarbor};

use crate::{
    harness::{ControlPlane, Operator, TIMEOUT, eventually, namespace},
    lifecycle::{create, get, phase, wait_for, wait_status},
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helm() -> PathBuf {
    let tools = std::env::var("TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/k8s-tools")
        });
    tools.join("bin/helm")
}

async fn allowed(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review");
    answer.status.map(|s| s.allowed).unwrap_or(false)
}

pub async fn chart_passes_chart_check_and_installs_with_working_rbac() {
    let chart = repo_root().join("charts/taskharbor-operator");
    let check = Command::new("bash")
        .arg(repo_root().join("../shared/k8s/chart-check.sh"))
        .arg(&chart)
        .status()
        .expect("chart-check.sh runs");
    assert!(
        check.success(),
        "chart-check.sh failed for {}",
        chart.display()
    );
    assert!(
        helm().exists(),
        "{} missing: run .ci/operator-prereqs.sh (chart-check.sh installs helm)",
        helm().display()
    );

    let cp = ControlPlane::get();
    let admin = cp.client().await;
    let release_ns = namespace(&admin, "chart").await;
    let tenants_ns = namespace(&admin, "chart-tenants").await;
    let install = Command::new(helm())
        .args(["install", "op"])
        .arg(&chart)
        .args(["--namespace", &release_ns, "--kubeconfig"])
        .arg(&cp.kubeconfig)
        .args(["--set", &format!("watchNamespace={tenants_ns}")])
        .status()
        .expect("helm runs");
    assert!(install.success(), "helm install failed");
    let deployment: Deployment = wait_for(&admin, &release_ns, "op-taskharbor-operator").await;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("op-taskharbor-operator")
    );
    let sc = pod.containers[0]
        .security_context
        .clone()
        .expect("security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        pod.security_context.and_then(|s| s.run_as_non_root),
        Some(true)
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
