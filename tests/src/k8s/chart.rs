//! Helm charts against the test API server: offline checks
//! (`chart-check.sh`: helm lint --strict, helm template,
//! kubernetes-validate --strict), a real `helm install`, and access reviews
//! for testing the chart's RBAC.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::PodSpec,
};
use kube::{Api, Client, api::PostParams};

use super::{ControlPlane, namespace, repo_root, shared_k8s_dir};

/// Checks `charts/<chart>` offline (`chart-check.sh`; `prereqs` is the
/// script to point at if helm is missing), then `helm install`s it as
/// `release` into a fresh namespace `<ns_prefix>-…`, with
/// `--set <tenants_value>=<ns_prefix>-tenants-…` (another fresh namespace).
/// Returns the control plane, the cluster admin's client, the release's
/// namespace and the tenants namespace.
pub async fn install_chart(
    chart: &str,
    prereqs: &str,
    release: &str,
    ns_prefix: &str,
    tenants_value: &str,
) -> (&'static ControlPlane, Client, String, String) {
    let chart = repo_root().join("charts").join(chart);
    check_chart(&chart, prereqs);
    let cp = ControlPlane::get();
    let admin = cp.client().await;
    let release_ns = namespace(&admin, ns_prefix).await;
    let tenants_ns = namespace(&admin, &format!("{ns_prefix}-tenants")).await;
    helm_install(
        cp,
        release,
        &chart,
        &release_ns,
        &format!("{tenants_value}={tenants_ns}"),
    );
    (cp, admin, release_ns, tenants_ns)
}

/// The helm that `chart-check.sh` installs (`$TOOLS`, default
/// `~/.cache/k8s-tools`).
fn helm() -> PathBuf {
    let tools = std::env::var("TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/k8s-tools")
        });
    tools.join("bin/helm")
}

/// Runs `chart-check.sh` on `chart` (panics with its output if it fails) and
/// makes sure it installed helm.
fn check_chart(chart: &Path, prereqs: &str) {
    let script = shared_k8s_dir().join("chart-check.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(chart)
        .output()
        .expect("chart-check.sh runs");
    assert!(
        output.status.success(),
        "chart-check.sh failed for {}:\n{}\n{}",
        chart.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        helm().exists(),
        "{} missing: run {prereqs} (chart-check.sh installs helm)",
        helm().display()
    );
}

/// `helm install <release> <chart> --namespace <namespace> --set <set>` into
/// the test API server.
fn helm_install(cp: &ControlPlane, release: &str, chart: &Path, namespace: &str, set: &str) {
    let install = Command::new(helm())
        .args(["install", release])
        .arg(chart)
        .args(["--namespace", namespace, "--kubeconfig"])
        .arg(&cp.kubeconfig)
        .args(["--set", set])
        .status()
        .expect("helm runs");
    assert!(install.success(), "helm install failed");
}

/// Whether `client` may `verb` `group`/`resource` (in `namespace`, or
/// cluster-wide), by a SelfSubjectAccessReview.
pub async fn allowed(
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
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review")
        .status
        .is_some_and(|s| s.allowed)
}

/// The pod spec of a chart's `deployment`, after checking that it is
/// hardened: a read-only root filesystem for the (first) container and
/// `runAsNonRoot` for the pod.
pub fn hardened_pod_spec(deployment: Deployment) -> PodSpec {
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
        pod.security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    pod
}
