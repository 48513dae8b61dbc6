//! End-to-end tests of the control plane against a real Kubernetes 1.20 API
//! server and controller manager (the shared harness in the workspace's
//! `tests/` crate, `taskharbor_tests::k8s`), with the operator's controller
//! running in-process, and the real tenant server binary. One test binary
//! with a custom (libtest-mimic) main, so the cluster is started once. A
//! missing cluster build FAILS the run with instructions. Logs for a failing
//! test: RUST_LOG=taskharbor_control_plane=debug,taskharbor_operator=info.

mod app;
mod chart;
mod e2e;
mod tenant;

use std::{path::Path, process::ExitCode};

use taskharbor_tests::k8s::{StartOptions, run, trial};

fn main() -> ExitCode {
    let tests = vec![
        trial(
            "signup_approve_ready_then_the_token_is_revealed_exactly_once",
            e2e::signup_approve_ready_then_the_token_is_revealed_exactly_once,
        ),
        trial(
            "suspend_resume_and_delete_go_through_the_resource",
            e2e::suspend_resume_and_delete_go_through_the_resource,
        ),
        trial(
            "revealed_token_opens_the_real_tenant_server",
            e2e::revealed_token_opens_the_real_tenant_server,
        ),
        trial(
            "chart_passes_chart_check_and_its_rbac_is_enough_and_no_more",
            chart::chart_passes_chart_check_and_its_rbac_is_enough_and_no_more,
        ),
    ];
    let cluster = StartOptions {
        tmp_dir: Path::new(env!("CARGO_TARGET_TMPDIR")),
        run_prefix: "cp-k8s-control-plane",
        service_range: None,
    };
    run("control-plane e2e tests", cluster, tests)
}
