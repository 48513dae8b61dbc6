//! (a) The single-tenant chart as a self-hoster installs it: `helm install`
//! → the pod runs the image → `/healthz` on the pod IP → the bootstrap
//! token from the chart's Secret works → a job made from the backup
//! CronJob writes a consistent SQLite copy onto its own volume.

use std::{process::Command, time::Instant};

use k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::json;
use taskharbor_tests::k8s::{ControlPlane, eventually, namespace, repo_root, unique};

use crate::support::{Fleet, POD_TIMEOUT, Tenant, figure, pod_url, ready_pod};

pub async fn single_tenant_chart_serves_from_the_image_and_its_backup_job_writes_a_copy() {
    let fleet = Fleet::get();
    let cp = ControlPlane::get();
    let client = cp.client().await;
    let ns = namespace(&client, "chart").await;
    let data_pv = unique("chart-data");
    let backup_pv = unique("chart-backups");
    fleet.node.pv(&data_pv, "1Gi");
    fleet.node.pv(&backup_pv, "5Gi");

    let helm = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/k8s-tools/bin/helm");
    let started = Instant::now();
    let status = Command::new(&helm)
        .args(["install", "th"])
        .arg(repo_root().join("charts/taskharbor"))
        .args(["--namespace", &ns, "--kubeconfig"])
        .arg(&cp.kubeconfig)
        .args([
            "--set",
            "image.repository=localhost/taskharbor",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            "backup.enabled=true",
            "--set",
            "persistence.size=1Gi",
        ])
        .status()
        .expect("helm runs");
    assert!(status.success(), "helm install failed");

    let pod = ready_pod(&client, &ns, "th-taskharbor-0", |_| true).await;
    figure(&format!(
        "chart: helm install -> pod Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("th-taskharbor")
        .await
        .expect("chart Secret");
    let token = String::from_utf8(
        secret.data.as_ref().expect("data")["bootstrap-token"]
            .0
            .clone(),
    )
    .expect("utf-8");
    let tenant = Tenant {
        base: pod_url(&pod),
        token,
    };
    tenant.assert_serves_as_admin().await;
    let board = tenant.seed("SELF", &["backed up"]).await;
    assert_eq!(tenant.items(board).await.len(), 1);

    // A run of the backup CronJob, started by hand the way
    // `kubectl create job --from=cronjob/…` does (that kubectl speaks only
    // batch/v1 CronJobs; this API server serves batch/v1beta1).
    let gvk = GroupVersionKind::gvk("batch", "v1beta1", "CronJob");
    let cronjobs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let cronjob = cronjobs
        .get("th-taskharbor-backup")
        .await
        .expect("backup CronJob rendered for this cluster's API");
    let job_spec = cronjob.data["spec"]["jobTemplate"]["spec"].clone();
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "manual-backup", "namespace": ns},
        "spec": job_spec,
    }))
    .expect("job");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("job created");
    eventually(POD_TIMEOUT, "backup job succeeded", || async {
        let job = jobs.get("manual-backup").await.ok()?;
        let status = job.status?;
        assert!(
            status.failed.unwrap_or(0) < 2,
            "backup job failed: {status:?}"
        );
        (status.succeeded.unwrap_or(0) >= 1).then_some(())
    })
    .await;
    let files: Vec<_> = std::fs::read_dir(fleet.node.pv_dir(&backup_pv))
        .expect("backup volume")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    assert_eq!(files.len(), 1, "one backup file: {files:?}");
    let bytes = std::fs::read(&files[0]).expect("backup readable");
    assert!(
        bytes.starts_with(b"SQLite format 3\0") && bytes.len() > 4096,
        "not a SQLite database"
    );
    // The copy holds what the server had: open it with the real server.
    let restored = crate::cp::serve_copy(&files[0]).await;
    let restored_tenant = Tenant {
        base: restored.base.clone(),
        token: tenant.token.clone(),
    };
    assert_eq!(
        restored_tenant.items(board).await,
        tenant.items(board).await
    );
}
