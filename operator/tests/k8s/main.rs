//! Integration tests of the operator against a real Kubernetes 1.20 API
//! server and controller manager (see `harness.rs`). One test binary with a
//! custom (libtest-mimic) main, so the control plane is started once before
//! the tests and stopped after them.

mod chart;
mod deletion;
mod harness;
mod leader;
mod lifecycle;

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
    // Operator logs for debugging a failing test: RUST_LOG=taskharbor_operator=debug.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let tests = vec![
        trial(
            "crd_installs_and_the_schema_rejects_a_bad_tenant",
            lifecycle::crd_installs_and_the_schema_rejects_a_bad_tenant,
        ),
        trial(
            "new_resource_gets_owned_children_then_ready_then_rolls_on_version_change",
            lifecycle::new_resource_gets_owned_children_then_ready_then_rolls_on_version_change,
        ),
        trial(
            "deleted_child_is_recreated_and_hand_edits_are_reverted",
            lifecycle::deleted_child_is_recreated_and_hand_edits_are_reverted,
        ),
        trial(
            "steady_state_resync_writes_nothing",
            lifecycle::steady_state_resync_writes_nothing,
        ),
        trial(
            "invalid_spec_is_degraded_with_a_clear_message",
            lifecycle::invalid_spec_is_degraded_with_a_clear_message,
        ),
        trial(
            "suspend_scales_to_zero_and_keeps_the_claim",
            deletion::suspend_scales_to_zero_and_keeps_the_claim,
        ),
        trial(
            "delete_with_retain_keeps_the_claim_and_collects_the_rest",
            deletion::delete_with_retain_keeps_the_claim_and_collects_the_rest,
        ),
        trial(
            "delete_without_retain_removes_the_claim",
            deletion::delete_without_retain_removes_the_claim,
        ),
        trial(
            "standby_takes_over_an_expired_lease_after_the_leader_vanishes",
            leader::standby_takes_over_an_expired_lease_after_the_leader_vanishes,
        ),
        trial(
            "only_the_leader_writes_and_a_standby_takes_over",
            leader::only_the_leader_writes_and_a_standby_takes_over,
        ),
        trial(
            "chart_passes_chart_check_and_installs_with_working_rbac",
            chart::chart_passes_chart_check_and_installs_with_working_rbac,
        ),
    ];
    if args.list {
        return libtest_mimic::run(&args, tests).exit_code();
    }
    let control_plane = match harness::ControlPlane::start() {
        Ok(cp) => cp,
        Err(message) => {
            eprintln!(
                "error: cannot start the Kubernetes control plane for the operator tests:\n  {message}"
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
