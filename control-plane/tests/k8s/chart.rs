//! The Helm chart: offline checks (`chart-check.sh`: helm lint --strict,
//! helm template, kubernetes-validate --strict), a real `helm install` into
//! the test API server, and the control plane doing its whole job (approve,
//! follow, reveal) with exactly the chart's RBAC, by impersonating its
//! ServiceAccount.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::PersistentVolumeClaim};
use kube::Api;
use reqwest::StatusCode;
use taskharbor_tests::k8s::{Operator, allowed, hardened_pod_spec, install_chart};

use crate::{
    app::App,
    e2e::{provision, reveal},
};

pub async fn chart_passes_chart_check_and_its_rbac_is_enough_and_no_more() {
    let (cp, admin, release_ns, tenants_ns) = install_chart(
        "taskharbor-control-plane",
        ".ci/control-plane-prereqs.sh",
        "cp",
        "cp-chart",
        "tenantsNamespace",
    )
    .await;

    let name = "cp-taskharbor-control-plane";
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &release_ns)
        .get(name)
        .await
        .expect("deployment installed");
    hardened_pod_spec(deployment);
    Api::<PersistentVolumeClaim>::namespaced(admin.clone(), &release_ns)
        .get(&format!("{name}-data"))
        .await
        .expect("data claim installed");

    let sa = cp
        .impersonating(&format!("system:serviceaccount:{release_ns}:{name}"))
        .await;
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        assert!(
            allowed(
                &sa,
                verb,
                "taskharbor.dev",
                "taskharbors",
                Some(&tenants_ns)
            )
            .await,
            "{verb} taskharbors"
        );
    }
    assert!(allowed(&sa, "get", "", "secrets", Some(&tenants_ns)).await);
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
            !allowed(&sa, verb, group, resource, Some(ns)).await,
            "must not {verb} {group}/{resource} in {ns}"
        );
    }

    // The whole job with exactly these permissions.
    let operator = Operator::start(admin.clone(), &tenants_ns, &["--leader-elect", "false"]);
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
