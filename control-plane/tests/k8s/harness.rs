//! Test harness: one real Kubernetes 1.20 control plane (etcd,
//! kube-apiserver, kube-controller-manager from `shared/k8s/`) per test
//! process, a namespace per test, the operator's controller running
//! in-process, and the control plane served on a real loopback port.
//!
//! Adapted from `operator/tests/k8s/harness.rs` (test modules cannot be
//! shared between crates); the operator itself is the real library.

use std::{
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use k8s_openapi::{
    api::core::v1::{Namespace, Pod},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;
use taskharbor_control_plane::{AppState, config::Config, fleet, serve, store};
use taskharbor_operator::{
    config::{Cli, Command as OperatorCommand},
    crd::TaskHarbor,
    metrics::Metrics,
    run_operator,
};
use tokio::sync::watch;

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

pub struct ControlPlane {
    script: PathBuf,
    run_dir: PathBuf,
    pub kubeconfig: PathBuf,
    env: Vec<(&'static str, String)>,
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

pub fn shared_k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/k8s")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl ControlPlane {
    /// Starts the control plane or explains exactly what is missing.
    pub fn start() -> Result<&'static ControlPlane, String> {
        let dir = shared_k8s_dir();
        let script = dir.join("k8s-control-plane.sh");
        if !script.exists() {
            return Err(format!(
                "{} not found: these tests need the repository's sibling `shared/k8s/` directory",
                script.display()
            ));
        }
        let home = std::env::var("HOME").unwrap_or_default();
        let cache = PathBuf::from(home).join(".cache/k8s-control-plane/v1.20.2");
        for binary in ["kube-apiserver", "kube-controller-manager", "etcd"] {
            if !cache.join(binary).exists() {
                return Err(format!(
                    "{} is missing: build the Kubernetes control plane first with `{}` (about 13 minutes, cached afterwards), or run .ci/operator-prereqs.sh",
                    cache.join(binary).display(),
                    dir.join("build-k8s-control-plane.sh").display()
                ));
            }
        }
        let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cp-k8s-control-plane-{}", std::process::id()));
        let env = vec![
            ("RUN", run_dir.display().to_string()),
            ("API_PORT", free_port()?.to_string()),
            ("ETCD_PORT", free_port()?.to_string()),
            ("PEER_PORT", free_port()?.to_string()),
        ];
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        let cp = ControlPlane {
            script,
            run_dir: run_dir.clone(),
            kubeconfig: run_dir.join("kubeconfig"),
            env,
        };
        cp.spawn_watchdog();
        if !output.status.success() {
            cp.stop();
            return Err(format!(
                "k8s-control-plane.sh start failed ({}); logs in {}/logs",
                output.status,
                run_dir.display()
            ));
        }
        Ok(CONTROL_PLANE.get_or_init(|| cp))
    }

    /// Stops the control plane if this process dies without `stop`.
    fn spawn_watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash '{script}' stop >/dev/null 2>&1",
            pid = std::process::id(),
            script = self.script.display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }

    pub fn get() -> &'static ControlPlane {
        CONTROL_PLANE
            .get()
            .unwrap_or_else(|| panic!("control plane not started"))
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig readable");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig valid");
        Client::try_from(config).expect("client")
    }

    /// A client that acts as `user` (to test the chart's RBAC for real).
    pub async fn impersonating(&self, user: &str) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig readable");
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig valid");
        config.auth_info.impersonate = Some(user.to_owned());
        Client::try_from(config).expect("client")
    }
}

/// Installs the operator's generated CRD (plain create: 1.20's server-side
/// apply mangles CRDs) and waits until it is served.
pub async fn install_crd(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.create(&PostParams::default(), &TaskHarbor::crd()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(format!("installing the CRD: {e}")),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let th: Api<TaskHarbor> = Api::all(client.clone());
        if th.list(&Default::default()).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("CRD not served after 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

/// The real operator controller, in-process, watching `namespace`.
pub struct Operator {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub fn start(client: Client, namespace: &str) -> Operator {
        let argv = [
            "taskharbor-operator",
            "run",
            "--watch-namespace",
            namespace,
            "--leader-elect",
            "false",
        ];
        let args = match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: OperatorCommand::Run(args),
            }) => args,
            other => panic!("bad operator flags: {other:?}"),
        };
        let metrics = Metrics::new().expect("metrics");
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            run_operator(&args, client, metrics, Arc::new(AtomicBool::new(false)), rx).await;
        });
        Operator { shutdown, task }
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

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
            Duration::from_millis(200),
            Duration::from_secs(24 * 3600),
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

pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Marks the tenant pod Running and Ready through its status subresource, as
/// a kubelet would (there is no kubelet); the StatefulSet controller then
/// reports it ready and the operator moves the tenant to `Ready`.
pub async fn simulate_pod_ready(client: &Client, namespace: &str, pod: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
        ],
        "containerStatuses": [{
            "name": "taskharbor", "ready": true, "started": true, "restartCount": 0,
            "image": "ghcr.io/taskharbor/taskharbor", "imageID": "",
            "state": {"running": {"startedAt": now}}
        }]
    }});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("pod status patched");
}
