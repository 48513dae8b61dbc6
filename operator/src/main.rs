//! `taskharbor-operator`: `run` starts the controller, `crd` prints the CRD.

use std::sync::{Arc, atomic::AtomicBool};

use anyhow::Context as _;
use clap::Parser;
use taskharbor_operator::{
    config::{Cli, Command},
    crd_yaml,
    metrics::Metrics,
    run_operator,
    server::{HealthState, serve},
};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Crd => {
            print!("{}", crd_yaml().context("rendering the CRD")?);
            return Ok(());
        }
        Command::Run(args) => args,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .json()
        .init();

    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let metrics = Metrics::new().context("registering metrics")?;
    let ready = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    let mut server_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(serve(
        listener,
        HealthState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        },
    ));

    // SIGTERM (kubelet) or Ctrl-C: stop reconciling, release the lease, exit.
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested");
        let _ = shutdown_tx.send(true);
    });

    run_operator(&args, client, metrics, ready, shutdown_rx).await;
    server.await.context("joining the metrics server")??;
    Ok(())
}
