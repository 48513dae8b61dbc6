//! The control plane served on a real loopback port, with its fleet
//! follower, against the test cluster (the cluster harness itself is shared:
//! `taskharbor_tests::k8s`).

use std::time::Duration;

use clap::Parser;
use kube::Client;
use taskharbor_control_plane::{AppState, config::Config, fleet, serve, store};
use tokio::sync::watch;

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// The control plane served on a loopback port, with its fleet follower.
pub struct App {
    pub base: String,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    shutdown: watch::Sender<bool>,
}

impl App {
    pub async fn start(client: Client, namespace: &str) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().display().to_string();
        let config = Config::try_parse_from([
            "taskharbor-control-plane",
            "--admin-token",
            ADMIN_TOKEN,
            "--data-dir",
            &data_dir,
            "--tenants-namespace",
            namespace,
            "--fleet-sync-ms",
            "200",
        ])
        .expect("config");
        let pool = store::connect(&config.database_path())
            .await
            .expect("database");
        let cluster = fleet::Cluster {
            client,
            namespace: namespace.to_owned(),
        };
        let state = AppState::new(&config, pool.clone(), Some(cluster.clone())).expect("state");
        let (shutdown, stopped) = watch::channel(false);
        tokio::spawn(fleet::follow(
            cluster,
            pool,
            state.metrics.clone(),
            fleet::FollowSettings {
                interval: Duration::from_millis(200),
                reveal_ttl: Duration::from_secs(24 * 3600),
                tenant_version: "0.1.0".into(),
            },
            stopped.clone(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut stop = stopped;
        let served = state.clone();
        tokio::spawn(async move {
            let _ = serve(listener, served, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        });
        App {
            base,
            state,
            dir,
            shutdown,
        }
    }

    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}
