//! What every fleet test shares: prerequisites, the images, the node, the
//! figures collected along the way, and small helpers for pods and the
//! tenant API on a pod's address.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde_json::{Value, json};
use taskharbor_tests::k8s::{ControlPlane, repo_root};

use crate::node::Node;

/// Pods really start here (image unpack, SQLite migrations), on a busy
/// 2-core machine: allow more than the API-only suites do.
pub const POD_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Images {
    pub dir: PathBuf,
    /// Where the release binaries the images were made from are.
    pub release_dir: PathBuf,
}

pub struct Fleet {
    pub node: Node,
    pub images: Images,
    figures: Mutex<Vec<String>>,
}

static FLEET: OnceLock<Fleet> = OnceLock::new();

/// Root and the cached Kubernetes build (with kubelet and the pause image):
/// the only reasons to skip outside CI.
pub fn prerequisites() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if uid != "0" {
        return Err("not root (the node needs containerd, mounts and a bridge)".into());
    }
    let cache = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/k8s-control-plane/v1.20.2");
    for file in [
        "kube-apiserver",
        "kube-controller-manager",
        "etcd",
        "kubelet",
        "kube-scheduler",
        "pause-oci.tar",
    ] {
        if !cache.join(file).exists() {
            return Err(format!(
                "{} missing: run .ci/operator-prereqs.sh (builds Kubernetes once, ~15 min)",
                cache.join(file).display()
            ));
        }
    }
    Ok(())
}

/// Runs `deploy/build-images.sh` (release build + umoci) into
/// `<tmp>/fleet-images`. `TASKHARBOR_FLEET_RELEASE_DIR` points it at
/// prebuilt binaries instead (a development shortcut; CI builds release).
pub fn build_images(tmp: &Path) -> Result<Images, String> {
    let dir = tmp.join("fleet-images");
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("deploy/build-images.sh"))
        .arg(&dir);
    let release_dir = match std::env::var("TASKHARBOR_FLEET_RELEASE_DIR") {
        Ok(prebuilt) => {
            command.env("RELEASE_DIR", &prebuilt);
            PathBuf::from(prebuilt)
        }
        // CARGO_TARGET_TMPDIR is <target>/tmp; build-images.sh builds into <target>/release.
        Err(_) => tmp.join("../release"),
    };
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("running build-images.sh: {e}"))?;
    if !status.success() {
        return Err(format!("deploy/build-images.sh failed ({status})"));
    }
    eprintln!(
        "fleet: images built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Images { dir, release_dir })
}

impl Fleet {
    pub fn init(node: Node, images: Images) -> Result<(), String> {
        let mut figures = Vec::new();
        for name in [
            "taskharbor",
            "taskharbor-operator",
            "taskharbor-control-plane",
        ] {
            let archive = images.dir.join(format!("{name}.tar"));
            node.import(&archive, name)?;
            let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
            figures.push(format!(
                "image {name}.tar: {:.1} MiB (OCI archive, one layer)",
                size as f64 / 1048576.0
            ));
        }
        FLEET
            .set(Fleet {
                node,
                images,
                figures: Mutex::new(figures),
            })
            .map_err(|_| "fleet initialised twice".to_owned())
    }

    pub fn get() -> &'static Fleet {
        FLEET.get().unwrap_or_else(|| panic!("fleet not started"))
    }

    pub fn try_get() -> Option<&'static Fleet> {
        FLEET.get()
    }

    pub fn report(&self, tmp: &Path) {
        let figures = self
            .figures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        eprintln!("\n--- fleet figures\n{figures}\n");
        let _ = std::fs::write(tmp.join("fleet-figures.txt"), figures);
    }

    /// A second tag of the tenant image (`localhost/taskharbor:<tag>`), for
    /// upgrades: the same layers under another reference (the archive keeps
    /// `0.1.0` too; importing it again changes nothing).
    pub fn tag_tenant_image(&self, tag: &str) {
        let work = tempfile::tempdir().expect("temp dir");
        let layout = work.path().join("oci");
        std::fs::create_dir(&layout).expect("layout dir");
        run(Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(self.images.dir.join("taskharbor.tar")));
        run(Command::new("umoci")
            .arg("tag")
            .arg("--image")
            .arg(format!("{}:0.1.0", layout.display()))
            .arg(tag));
        let archive = work.path().join("tagged.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg("."));
        self.node
            .import(&archive, "taskharbor")
            .expect("second tag imported");
    }
}

/// Records one measured figure for the report.
pub fn figure(line: &str) {
    eprintln!("fleet figure: {line}");
    Fleet::get()
        .figures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line.to_owned());
}

fn run(command: &mut Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until pod `name` exists, satisfies `accept` (e.g. "not the old
/// uid"), is Running and Ready, and returns it.
pub async fn ready_pod(
    client: &Client,
    ns: &str,
    name: &str,
    accept: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + POD_TIMEOUT;
    loop {
        if let Ok(Some(pod)) = pods.get_opt(name).await
            && accept(&pod)
            && is_ready(&pod)
            && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        {
            return pod;
        }
        if Instant::now() > deadline {
            let state = pods.get_opt(name).await.ok().flatten().map(|p| p.status);
            panic!("pod {ns}/{name} not Running and Ready after {POD_TIMEOUT:?}: {state:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn pod_gone(client: &Client, ns: &str, name: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + POD_TIMEOUT;
    while pods.get_opt(name).await.ok().flatten().is_some() {
        assert!(Instant::now() < deadline, "pod {ns}/{name} still exists");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn pod_url(pod: &Pod) -> String {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod IP");
    assert!(
        ip.starts_with("10.88.0."),
        "pod IP {ip} is not on the node's bridge"
    );
    format!("http://{ip}:8080")
}

pub fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The tenant API on a pod.
pub struct Tenant {
    pub base: String,
    pub token: String,
}

impl Tenant {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = http()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("tenant reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET /healthz` → 200 and `GET /api/me` → 200 with the admin scope.
    pub async fn assert_serves_as_admin(&self) {
        let health = http()
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        let (status, me) = self.call(reqwest::Method::GET, "/api/me", None).await;
        assert_eq!(status, 200, "{me}");
        assert!(me.to_string().contains("admin"), "{me}");
    }

    /// A board `key` with `titles` as items; returns the board id.
    pub async fn seed(&self, key: &str, titles: &[&str]) -> i64 {
        let (status, board) = self
            .call(
                reqwest::Method::POST,
                "/api/boards",
                Some(json!({"name": key, "key": key})),
            )
            .await;
        assert_eq!(status, 201, "{board}");
        let id = board["id"].as_i64().expect("board id");
        for title in titles {
            let (status, item) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/api/boards/{id}/items"),
                    Some(json!({"title": title})),
                )
                .await;
            assert_eq!(status, 201, "{item}");
        }
        id
    }

    /// (key, title, status) of every item of board `id`, by key.
    pub async fn items(&self, id: i64) -> Vec<(String, String, String)> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/boards/{id}/items?limit=200"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let list = body
            .get("items")
            .or(body.get("data"))
            .cloned()
            .unwrap_or(body);
        let mut items: Vec<_> = list
            .as_array()
            .expect("item list")
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap_or_default().to_owned(),
                    i["title"].as_str().unwrap_or_default().to_owned(),
                    i["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        items.sort();
        items
    }
}

/// Memory of a pod's cgroup as the node sees it (cgroup v1, kubelet
/// cgroupfs driver): the working set (usage minus inactive file cache, what
/// the kubelet evicts on) and the RSS, in bytes.
pub fn pod_memory(pod: &Pod) -> Option<(u64, u64)> {
    let uid = uid(pod);
    let base = Path::new("/sys/fs/cgroup/memory/kubepods");
    let dir = ["burstable", "besteffort", ""]
        .iter()
        .map(|qos| base.join(qos).join(format!("pod{uid}")))
        .find(|d| d.exists())?;
    let usage: u64 = std::fs::read_to_string(dir.join("memory.usage_in_bytes"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    let field = |name: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((
        usage.saturating_sub(field("total_inactive_file ")),
        field("total_rss "),
    ))
}

/// `kubectl exec` into a pod (the image has no shell: `args` is the program).
pub fn exec(ns: &str, pod: &str, args: &[&str]) -> String {
    let kubeconfig = ControlPlane::get().kubeconfig.clone();
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["-n", ns, "exec", pod, "--"])
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl exec {pod} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
