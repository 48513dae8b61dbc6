//! Test harness: one real control plane (etcd + kube-apiserver +
//! kube-controller-manager v1.20) per test process, a namespace per test, and
//! the operator running in-process as tokio tasks.
//!
//! The control plane comes from `shared/k8s/k8s-control-plane.sh` next to the
//! repository. It listens on free loopback ports in a private run directory,
//! so concurrent test processes (or a leftover from a killed run) cannot
//! collide, and a watchdog process stops it if this process dies without
//! cleaning up.

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
use taskharbor_operator::{
    config::{Cli, Command as OperatorCommand, RunArgs},
    crd::TaskHarbor,
    metrics::Metrics,
    run_operator,
};
use tokio::sync::watch;

/// The running control plane, shared by all tests of this process.
pub struct ControlPlane {
    script: PathBuf,
    run_dir: PathBuf,
    pub kubeconfig: PathBuf,
    env: Vec<(&'static str, String)>,
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

fn shared_k8s_dir() -> PathBuf {
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
        Self::start_with_service_range(None)
    }

    /// Like [`ControlPlane::start`], optionally with a larger Service IP range
    /// than the script's fixed /24 (254 ClusterIPs, too few for the
    /// 1,000-tenant benchmark). The shared script is not modified: a copy
    /// with the one flag changed is run from the private run directory.
    pub fn start_with_service_range(
        service_range: Option<&str>,
    ) -> Result<&'static ControlPlane, String> {
        let dir = shared_k8s_dir();
        let mut script = dir.join("k8s-control-plane.sh");
        if !script.exists() {
            return Err(format!(
                "{} not found: the integration tests need the repository's sibling `shared/k8s/` directory",
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
            .join(format!("k8s-control-plane-{}", std::process::id()));
        if let Some(range) = service_range {
            let original = std::fs::read_to_string(&script).map_err(|e| e.to_string())?;
            let flag = "--service-cluster-ip-range=10.0.0.0/24";
            if !original.contains(flag) {
                return Err(format!("{} no longer sets {flag}", script.display()));
            }
            let copy = run_dir.with_extension("sh");
            std::fs::write(
                &copy,
                original.replace(flag, &format!("--service-cluster-ip-range={range}")),
            )
            .map_err(|e| e.to_string())?;
            script = copy;
        }
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

    /// Stops the control plane if this process goes away without `stop`
    /// (a panic in the harness, SIGKILL of the test binary).
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
        let _ = std::fs::remove_file(self.run_dir.with_extension("sh"));
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

    /// A client that acts as `user` (used to test the chart's RBAC for real).
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

/// Installs the generated CRD and waits until it is served.
pub async fn install_crd(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Kubernetes 1.20's server-side apply mangles CRDs (it drops the
    // subresources and printer columns), so install it with a plain create,
    // the way `helm install` and `kubectl create` do.
    let crd = TaskHarbor::crd();
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(format!("installing the CRD: {e}")),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let crd = api
            .get("taskharbors.taskharbor.dev")
            .await
            .map_err(|e| format!("reading the CRD: {e}"))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            // The discovery cache of a fresh client may lag a moment behind.
            let th: Api<TaskHarbor> = Api::all(client.clone());
            if th.list(&Default::default()).await.is_ok() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("CRD not established after 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

static NAMESPACE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates a fresh namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
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

/// An operator instance running in this process.
pub struct Operator {
    pub metrics: Metrics,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    /// Starts the real operator (`run_operator`, as `main` does) with `flags`
    /// added to `run --watch-namespace <ns>`.
    pub fn start(client: Client, namespace: &str, flags: &[&str]) -> Operator {
        let mut argv = vec!["taskharbor-operator", "run", "--watch-namespace", namespace];
        argv.extend_from_slice(flags);
        let args = match <Cli as clap::Parser>::try_parse_from(argv) {
            Ok(Cli {
                command: OperatorCommand::Run(args),
            }) => args,
            other => panic!("bad operator flags: {other:?}"),
        };
        Self::start_with(client, args)
    }

    pub fn start_with(client: Client, args: RunArgs) -> Operator {
        let metrics = Metrics::new().expect("metrics");
        let (shutdown, rx) = watch::channel(false);
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            run_operator(&args, client, m, Arc::new(AtomicBool::new(false)), rx).await;
        });
        Operator {
            metrics,
            shutdown,
            task,
        }
    }

    /// Vanishes without releasing the lease (like a killed pod): the task is
    /// aborted; the controller it started stops because its stop signal's
    /// sender is dropped.
    pub fn crash(self) {
        self.task.abort();
    }

    /// Graceful stop (as on SIGTERM): in-flight reconciles finish, the lease is released.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after `timeout`.
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

/// Marks the tenant pod Running and Ready through its status subresource, as a
/// kubelet would; the StatefulSet controller then reports it ready.
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

pub const TIMEOUT: Duration = Duration::from_secs(60);
