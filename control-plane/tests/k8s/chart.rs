//! The Helm chart: offline checks (`chart-check.sh`: helm lint --strict,
//! helm template, kubernetes-validate --strict), a real `helm install` into
//! the test API server, and the control plane doing its whole job (approve,
//! follow, reveal) with exactly the chart's RBAC, by impersonating its
//! ServiceAccount.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::PersistentVolumeClaim,
};
use kube::{Api, Client, api::PostParams};
use reqwest::StatusCode;

use crate::{
    e2e::{provision, reveal},
    harness::{App, ControlPlane, Operator, namespace, shared_k8s_dir},
};

fn helm() -> PathBuf {
    let tools = std::env::var("TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/k8s-tools")
        });
    tools.join("bin/helm")
}

async fn allowed(client: &Client, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some(ns.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review")
        .status
        .is_some_and(|s| s.allowed)
}

pub async fn chart_passes_chart_check_and_its_rbac_is_enough_and_no_more() {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/taskharbor-control-plane");
    let script = shared_k8s_dir().join("chart-check.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&chart)
        .output()
        .expect("chart-check.sh runs");
    assert!(
        output.status.success(),
        "chart-check.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        helm().exists(),
        "{} missing: run .ci/control-plane-prereqs.sh (chart-check.sh installs helm)",
        helm().display()
    );

    let cp = ControlPlane::get();
    let admin = cp.client().await;
    let release_ns = namespace(&admin, "cp-chart").await;
    let tenants_ns = namespace(&admin, "cp-chart-tenants").await;
    let install = Command::new(helm())
        .args(["install", "cp"])
        .arg(&chart)
        .args(["--namespace", &release_ns, "--kubeconfig"])
        .arg(&cp.kubeconfig)
        .args(["--set", &format!("tenantsNamespace={tenants_ns}")])
        .status()
        .expect("helm runs");
    assert!(install.success(), "helm install failed");

    let name = "cp-taskharbor-control-plane";
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &release_ns)
        .get(name)
        .await
        .expect("deployment installed");
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let sc = pod.containers[0]
        .security_context
        .clone()
        .expect("security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        pod.security_context.and_then(|s| s.run_as_non_root),
        Some(true)
    );
    Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &release_ns)
        .get(&format!("{name}-data"))
        .await
        .expect("data claim installed");

    let sa = cp
        .impersonating(&format!("system:serviceaccount:{release_ns}:{name}"))
        .await;
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        assert!(
            allowed(&sa, verb, "taskharbor.dev", "taskharbors", &tenants_ns).await,
            "{verb} taskharbors"
        );
    }
    assert!(allowed(&sa, "get", "", "secrets", &tenants_ns).await);
    for (verb, group, resource, ns) in [
        ("list", "", "secrets", tenants_ns.as_str()),
        ("create", "", "secrets", tenants_ns.as_str()),
        ("get", "", "secrets", release_ns.as_str()),
        (
            "update",
            "taskharbor.dev",
            "taskharbors",
            tenants_ns.as_str(),
        ),
        (
            "create",
            "taskharbor.dev",
            "taskharbors",
            release_ns.as_str(),
        ),
        (
            "patch",
            "taskharbor.dev",
            "taskharbors/status",
            tenants_ns.as_str(),
        ),
        ("create", "", "pods", tenants_ns.as_str()),
        ("delete", "apps", "statefulsets", tenants_ns.as_str()),
    ] {
        assert!(
            !allowed(&sa, verb, group, resource, ns).await,
            "must not {verb} {group}/{resource} in {ns}"
        );
    }

    // The whole job with exactly these permissions.
    let operator = Operator::start(admin.clone(), &tenants_ns);
    let app = App::start(sa, &tenants_ns).await;
    let (url, expected) = provision(&admin, &tenants_ns, &app, "rbac@example.com", "rbac").await;
    let (status, body) = reveal(&url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], expected.as_str());
    assert_eq!(
        app.state.metrics.errors.with_label_values(&["kube"]).get(),
        0,
        "no API call was forbidden"
    );
    app.stop();
    operator.stop().await;
}
