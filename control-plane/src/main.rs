//! `taskharbor-control-plane`: parse config, init logging, open the
//! database, connect to the cluster (unless `--kube=off`), serve.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use taskharbor_control_plane::{
    AppState,
    config::{Config, KubeMode, LogFormat},
    fleet::{self, Cluster},
    serve, store,
};
use tokio::{net::TcpListener, sync::watch};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let pool = store::connect(&config.database_path())
        .await
        .context("opening the database")?;
    let cluster = match config.kube {
        KubeMode::Off => None,
        KubeMode::On => Some(Cluster {
            client: kube::Client::try_default()
                .await
                .context("connecting to Kubernetes (use --kube=off to run without a cluster)")?,
            namespace: config.tenants_namespace.clone(),
        }),
    };
    let state = AppState::new(&config, pool.clone(), cluster.clone())?;
    // The plaintext admin token goes away with `config`; only its hash stays.
    let listen = config.listen;
    let sync_interval = Duration::from_millis(config.fleet_sync_ms.max(100));
    let follow_settings = fleet::FollowSettings {
        interval: sync_interval,
        reveal_ttl: config.reveal_ttl(),
        tenant_version: config.tenant_version.clone(),
    };
    drop(config);

    let (stop, stopped) = watch::channel(false);
    let follower = cluster.map(|cluster| {
        tokio::spawn(fleet::follow(
            cluster,
            pool,
            state.metrics.clone(),
            follow_settings,
            stopped.clone(),
        ))
    });
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, kube = follower.is_some(), "listening");
    let mut stopped_for_server = stopped.clone();
    let server = serve(listener, state, async move {
        let _ = stopped_for_server.wait_for(|s| *s).await;
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    server.await.context("serving")?;
    if let Some(f) = follower {
        let _ = f.await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
