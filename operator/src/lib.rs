//! TaskHarbor operator: turns each `TaskHarbor` custom resource into one
//! single-tenant pod with its own volume (see `docs/operator.md`).
//!
//! The library exists so the control plane can share [`crd`] and so the
//! integration tests and the benchmark can run the real controller in-process.

pub mod config;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod server;

use kube::CustomResourceExt;

/// The CRD YAML generated from [`crd::TaskHarbor`] (what `taskharbor-operator crd` prints).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd::TaskHarbor::crd())
}

/// Runs the controller as configured by `args` until `shutdown` turns true:
/// under leader election when enabled, directly otherwise. `ready` is set
/// once the API server has answered (it backs `/readyz`).
pub async fn run_operator(
    args: &config::RunArgs,
    client: kube::Client,
    metrics: metrics::Metrics,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let identity = args.identity();
    let settings = args.settings(&identity);
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    if args.leader_elect {
        let elector = leader::Elector::new(client.clone(), args.lease(&identity));
        leader::run_elected(elector, metrics.clone(), shutdown, move |stop| {
            let stop = async move {
                let _ = stop.await;
            };
            controller::run(client.clone(), settings.clone(), metrics.clone(), stop)
        })
        .await;
    } else {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        controller::run(client, settings, metrics, stop).await;
    }
}

#[cfg(test)]
mod tests {
    /// The chart ships a copy of the CRD; it must be exactly what the code generates.
    #[test]
    fn chart_crd_matches_the_generated_crd() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../charts/taskharbor-operator/crds/taskharbors.taskharbor.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).expect("chart CRD exists");
        let generated = super::crd_yaml().expect("CRD renders");
        assert!(
            committed == generated,
            "{path} is stale: run `cargo run -p taskharbor-operator -- crd > {path}`"
        );
    }

    /// The samples are what users copy first: they must parse and validate.
    #[test]
    fn samples_parse_and_validate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("samples dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("readable");
            let th: super::crd::TaskHarbor =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(th.spec.validate().is_ok(), "{} is invalid", path.display());
            seen += 1;
        }
        assert!(
            seen >= 3,
            "expected the minimal, with-host and suspended samples"
        );
    }
}
