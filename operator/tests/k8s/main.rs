//! Integration tests of the operator against a real Kubernetes 1.20 API
//! server and controller manager (the shared harness in the workspace's
//! `tests/` crate, `taskharbor_tests::k8s`). One test binary with a custom
//! (libtest-mimic) main, so the control plane is started once before the
//! tests and stopped after them. Operator logs for debugging a failing test:
//! RUST_LOG=taskharbor_operator=debug.

mod chart;
mod deletion;
mod leader;
mod lifecycle;

use std::{path::Path, process::ExitCode};

use taskharbor_tests::k8s::{StartOptions, run, trial};

fn main() -> ExitCode {
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
    let cluster = StartOptions {
        tmp_dir: Path::new(env!("CARGO_TARGET_TMPDIR")),
        run_prefix: "k8s-control-plane",
        service_range: None,
    };
    run("operator tests", cluster, tests)
}
