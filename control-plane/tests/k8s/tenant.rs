//! The real tenant server binary (`tenant-server`, bin `taskharbor`), run as
//! the tenant pod would run it.
//!
//! Choice: no dev-dependency on `tenant-server` (a binary cannot be a
//! dependency, and linking its library would not exercise `main`). Instead
//! the helper runs `cargo build -p tenant-server --bin taskharbor` once and
//! takes the executable path from cargo's JSON messages, so it works with any
//! `CARGO_TARGET_DIR`. Under `cargo test --workspace` the binary is already
//! built and this is a no-op. `TASKHARBOR_TENANT_BIN` overrides the path.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

pub fn binary() -> Result<PathBuf, String> {
    BINARY.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("TASKHARBOR_TENANT_BIN") {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(&cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--locked",
            "-p",
            "tenant-server",
            "--bin",
            "taskharbor",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {cargo} build -p tenant-server: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build -p tenant-server --bin taskharbor` failed ({})",
            output.status
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "taskharbor")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo reported no `taskharbor` executable".to_owned())
}

/// A running tenant server; killed on drop.
pub struct Tenant {
    child: Child,
    pub base: String,
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tenant {
    /// Starts `taskharbor` with `TASKHARBOR_BOOTSTRAP_TOKEN` set, exactly as
    /// the operator's pod template does, and waits for its listening line.
    pub fn start(data_dir: &Path, bootstrap_token: &str) -> Result<Tenant, String> {
        let binary = binary()?;
        let mut child = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--log-format", "json"])
            .env("TASKHARBOR_BOOTSTRAP_TOKEN", bootstrap_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned));
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Ok(Tenant {
                child,
                base: format!("http://{addr}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "{} did not log a JSON line with `fields.addr` within 30 s (exit: {status}). \
                     The tenant server must be the real one (branch `main`); on a branch where \
                     `tenant-server` is still the workspace skeleton's stub this cannot pass.",
                    binary.display()
                ))
            }
        }
    }
}
