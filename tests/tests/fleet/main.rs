//! The fleet, really running: the container images from
//! `deploy/build-images.sh` imported into a real node (`k8s-node.sh`:
//! containerd, runc, kubelet, scheduler) beside the real Kubernetes 1.20
//! control plane, then
//!
//! - `chart`: `helm install` of the single-tenant chart → pod Running →
//!   `/healthz` on the pod IP → the bootstrap token works → the backup
//!   CronJob's job writes a SQLite copy;
//! - `lifecycle`: control plane signup → approve → operator → tenant pod
//!   from the image → one-time reveal → the token works on the pod; data
//!   survives a pod deletion, a version upgrade (second image tag), suspend
//!   and resume; delete keeps the volume;
//! - `backup`: an online backup of a running tenant restored into a new
//!   tenant, data identical;
//! - `repair`: the control plane killed between recording an approval and
//!   creating the resource completes it on restart; its signup rate limit
//!   survives the restart.
//!
//! Prerequisites: root (containerd, mounts, bridge) and the cached
//! Kubernetes build (`build-k8s-control-plane.sh`, ~15 min once). Without
//! them the suite is SKIPPED with a loud message, except under `CI=true`,
//! where it FAILS. Figures (apply→Ready, idle pod memory, reconcile time)
//! are printed at the end and written to `<target>/tmp/fleet-figures.txt`;
//! `FLEET_DENSITY=N` adds the idle-density measurement with N pods.

mod backup;
mod chart;
mod cp;
mod lifecycle;
mod node;
mod repair;
mod support;

use std::{path::Path, process::ExitCode};

use libtest_mimic::Arguments;
use taskharbor_tests::k8s::{ControlPlane, StartOptions, install_crd, trial};

use crate::support::Fleet;

/// The controllers a real node needs besides the script's defaults: the PV
/// binder and node lifecycle (k8s-node.sh README), and jobs (the chart's
/// backup CronJob).
const KCM_CONTROLLERS: &str = "garbagecollector,namespace,pvc-protection,pv-protection,statefulset,persistentvolume-binder,nodelifecycle,job";

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One node, real pods: the tests run one after another.
    args.test_threads = Some(1);
    let mut tests = vec![
        trial(
            "single_tenant_chart_serves_from_the_image_and_its_backup_job_writes_a_copy",
            chart::single_tenant_chart_serves_from_the_image_and_its_backup_job_writes_a_copy,
        ),
        trial(
            "signup_to_running_tenant_then_restart_upgrade_suspend_and_delete_keep_the_data",
            lifecycle::signup_to_running_tenant_then_restart_upgrade_suspend_and_delete_keep_the_data,
        ),
        trial(
            "online_backup_of_a_running_tenant_restores_into_a_new_tenant",
            backup::online_backup_of_a_running_tenant_restores_into_a_new_tenant,
        ),
        trial(
            "approval_interrupted_by_a_kill_is_completed_on_restart_and_rate_limits_persist",
            repair::approval_interrupted_by_a_kill_is_completed_on_restart_and_rate_limits_persist,
        ),
    ];
    if let Some(pods) = std::env::var("FLEET_DENSITY")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        tests.push(trial("idle_density", move || lifecycle::idle_density(pods)));
    }
    if args.list {
        return libtest_mimic::run(&args, tests).exit_code();
    }
    if let Err(missing) = support::prerequisites() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            eprintln!("error: the fleet tests cannot run in CI: {missing}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPING the fleet tests (real pods on k8s-node.sh): {missing}\n\
             !! They run in CI (CI=true makes this a failure).\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return ExitCode::SUCCESS;
    }
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let images = match support::build_images(tmp) {
        Ok(images) => images,
        Err(e) => {
            eprintln!("error: building the images: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster = StartOptions {
        tmp_dir: tmp,
        run_prefix: "fleet-k8s",
        service_range: None,
    };
    let cp = match ControlPlane::start_with_env(cluster, &[("KCM_CONTROLLERS", KCM_CONTROLLERS)]) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: cannot start the Kubernetes control plane: {e}");
            return ExitCode::FAILURE;
        }
    };
    let node_dir = tmp.join(format!("fleet-node-{}", std::process::id()));
    let started = node::Node::start(cp, node_dir).and_then(|node| {
        let setup = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(async { install_crd(&cp.client().await).await }));
        Fleet::init(node, images).and(setup)
    });
    if let Err(e) = started {
        eprintln!("error: {e}");
        if let Some(fleet) = Fleet::try_get() {
            fleet.node.stop();
        }
        cp.stop();
        return ExitCode::FAILURE;
    }
    let conclusion = libtest_mimic::run(&args, tests);
    let fleet = Fleet::get();
    fleet.report(tmp);
    fleet.node.stop();
    cp.stop();
    conclusion.exit_code()
}
