//! Test support shared by the workspace's end-to-end suites.
//!
//! - [`k8s`]: one real local Kubernetes 1.20 control plane per test process
//!   (`shared/k8s/k8s-control-plane.sh`), the operator's controller running
//!   in-process, per-test namespaces, polling helpers, Helm chart checks and
//!   the libtest-mimic `main` of the `k8s` test binaries of `operator` and
//!   `control-plane`.

pub mod k8s;
