//! The control plane process group, the CRD and per-test namespaces.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use taskharbor_operator::crd::TaskHarbor;

/// The running control plane, shared by all tests of this process.
pub struct ControlPlane {
    script: PathBuf,
    run_dir: PathBuf,
    pub kubeconfig: PathBuf,
    env: Vec<(&'static str, String)>,
}

/// How [`ControlPlane::start`] lays out its private run directory.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions<'a> {
    /// Where the run directory goes: the caller's
    /// `env!("CARGO_TARGET_TMPDIR")` (only set for test and bench targets).
    pub tmp_dir: &'a Path,
    /// The run directory is `<tmp_dir>/<run_prefix>-<pid>`.
    pub run_prefix: &'a str,
    /// A larger Service IP range than the script's fixed /24 (254
    /// ClusterIPs, too few for the 1,000-tenant benchmark). The shared
    /// script is not modified: a copy with the one flag changed is run from
    /// next to the run directory.
    pub service_range: Option<&'a str>,
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The repository root (this crate is its top-level `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `shared/k8s/`, the sibling of the repository.
pub fn shared_k8s_dir() -> PathBuf {
    repo_root().join("../shared/k8s")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl ControlPlane {
    /// Starts the control plane or explains exactly what is missing.
    pub fn start(options: StartOptions<'_>) -> Result<&'static ControlPlane, String> {
        Self::start_with_env(options, &[])
    }

    /// [`ControlPlane::start`] with extra environment for the script, e.g.
    /// `KCM_CONTROLLERS` (the controllers a real node needs: the PV binder,
    /// node lifecycle, jobs).
    pub fn start_with_env(
        options: StartOptions<'_>,
        extra_env: &[(&'static str, &str)],
    ) -> Result<&'static ControlPlane, String> {
        let dir = shared_k8s_dir();
        let mut script = dir.join("k8s-control-plane.sh");
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
        let run_dir =
            options
                .tmp_dir
                .join(format!("{}-{}", options.run_prefix, std::process::id()));
        if let Some(range) = options.service_range {
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
        let mut env = vec![
            ("RUN", run_dir.display().to_string()),
            ("API_PORT", free_port()?.to_string()),
            ("ETCD_PORT", free_port()?.to_string()),
            ("PEER_PORT", free_port()?.to_string()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
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

    /// The private run directory (`RUN` of the shared scripts).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
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

    /// A client that acts as `user` (used to test the charts' RBAC for real).
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

/// Installs the operator's generated CRD and waits until it is Established
/// and served.
pub async fn install_crd(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Kubernetes 1.20's server-side apply mangles CRDs (it drops the
    // subresources and printer columns), so install it with a plain create,
    // the way `helm install` and `kubectl create` do.
    match api.create(&PostParams::default(), &TaskHarbor::crd()).await {
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
            return Err("CRD not established and served after 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<prefix>-<pid>-<n>`: unique within this process and across concurrent
/// test processes.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a fresh namespace for one test.
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
