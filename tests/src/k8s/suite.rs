//! The `main` of a `harness = false` (libtest-mimic) test binary: the control
//! plane is started once before the tests and stopped after them. A missing
//! cluster build FAILS the run with instructions.

use std::{future::Future, process::ExitCode};

use libtest_mimic::{Arguments, Failed, Trial};

use super::{ControlPlane, StartOptions, install_crd};

/// One test, run on its own two-worker tokio runtime.
pub fn trial<F, Fut>(name: &'static str, test: F) -> Trial
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

/// Parses the libtest arguments, starts the control plane (unless only
/// listing), installs the CRD, runs `tests` and stops the control plane.
/// `suite` names the tests in the error when the cluster cannot start.
/// Logs go to stderr when `RUST_LOG` is set.
pub fn run(suite: &str, cluster: StartOptions<'_>, tests: Vec<Trial>) -> ExitCode {
    let args = Arguments::from_args();
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    if args.list {
        return libtest_mimic::run(&args, tests).exit_code();
    }
    let control_plane = match ControlPlane::start(cluster) {
        Ok(cp) => cp,
        Err(message) => {
            eprintln!(
                "error: cannot start the Kubernetes control plane for the {suite}:\n  {message}"
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
                install_crd(&client).await
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
