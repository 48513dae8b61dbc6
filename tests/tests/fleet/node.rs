//! The real node beside the control plane (`shared/k8s/k8s-node.sh`):
//! containerd + runc + kubelet + scheduler, pods on the 10.88.0.x bridge,
//! images imported from OCI archives, static local PersistentVolumes.
//!
//! The node's directory is kept outside the control plane's run directory
//! (`NODE`), so the control plane's `stop` (which deletes its run
//! directory) never walks into container mounts; a watchdog stops the node
//! if this process dies first.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use taskharbor_tests::k8s::{ControlPlane, shared_k8s_dir};

pub struct Node {
    script: PathBuf,
    env: Vec<(&'static str, String)>,
    pub dir: PathBuf,
}

impl Node {
    pub fn start(cp: &ControlPlane, dir: PathBuf) -> Result<Node, String> {
        let node = Node {
            script: shared_k8s_dir().join("k8s-node.sh"),
            env: vec![
                ("RUN", cp.run_dir().display().to_string()),
                ("NODE", dir.display().to_string()),
            ],
            dir,
        };
        node.spawn_watchdog();
        node.run(&["start"]).inspect_err(|_| node.stop())?;
        Ok(node)
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running k8s-node.sh: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "k8s-node.sh {args:?} failed ({}): {}{}; logs in {}/logs",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.dir.display()
            ))
        }
    }

    /// Imports an OCI archive as `localhost/<name>:<its ref name>`.
    pub fn import(&self, archive: &Path, name: &str) -> Result<(), String> {
        let archive = archive.display().to_string();
        self.run(&["import", &archive, &format!("localhost/{name}")])
            .map(|_| ())
    }

    /// A static local PersistentVolume `name` of `size` that one class-less
    /// claim binds to; its data is in [`Node::pv_dir`].
    pub fn pv(&self, name: &str, size: &str) {
        self.run(&["pv", name, size])
            .expect("PersistentVolume created");
    }

    pub fn pv_dir(&self, name: &str) -> PathBuf {
        self.dir.join("pv").join(name)
    }

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
        if let Err(e) = self.run(&["stop"]) {
            eprintln!("warning: {e}");
        }
    }
}
