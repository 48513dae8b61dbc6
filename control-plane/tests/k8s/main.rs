//! End-to-end tests of the control plane against a real Kubernetes 1.20 API
//! server and controller manager (`shared/k8s/`), with the operator's
//! controller running in-process, and the real tenant server binary. One
//! test binary with a custom (libtest-mimic) main, so the cluster is started
//! once. A missing cluster build FAILS the run with instructions.

mod chart;
mod e2e;
mod harness;
mod tenant;

use std::{future::Future, process::ExitCode};

use libtest_mimic::{Arguments, Failed, Trial};

fn trial<F, Fut>(name: &'static str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(format!("tokio runtime: {e}")))?;
        runtime.block_on(test());
        Ok(())
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // Logs for a failing test: RUST_LOG=taskharbor_control_plane=debug,taskharbor_operator=info.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
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
    if args.list {
        return libtest_mimic::run(&args, tests).exit_code();
    }
    let control_plane = match harness::ControlPlane::start() {
        Ok(cp) => cp,
        Err(message) => {
            eprintln!(
                "error: cannot start the Kubernetes control plane for the control-plane e2e tests:\n  {message}"
            );
            return ExitCode::FAILURE;
        }
    };
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let client = control_plane.client().await;
                harness::install_crd(&client).await
            })
        });
    if let Err(message) = setup {
        eprintln!("error: {message}");
        control_plane.stop();
        return ExitCode::FAILURE;
    }
    let conclusion = libtest_mimic::run(&args, tests);
    control_plane.stop();
    conclusion.exit_code()
}
