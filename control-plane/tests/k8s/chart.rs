//! The Helm chart passes `shared/k8s/chart-check.sh` (helm lint --strict,
//! helm template, kubernetes-validate --strict), and its RBAC stays narrow.

use std::{path::Path, process::Command};

use crate::harness::shared_k8s_dir;

pub async fn chart_passes_chart_check() {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/taskharbor-control-plane");
    let script = shared_k8s_dir().join("chart-check.sh");
    assert!(script.exists(), "{} not found", script.display());
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
    let rbac = std::fs::read_to_string(chart.join("templates/rbac.yaml")).expect("rbac.yaml");
    assert!(!rbac.contains("ClusterRole"), "namespaced Role only");
    assert!(!rbac.contains("\"*\""), "no wildcards");
}
