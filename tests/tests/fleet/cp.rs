//! The real `taskharbor-control-plane` binary (the one in the image) as a
//! process on loopback, and the real tenant server on a copied database.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{Fleet, http};

pub const ADMIN_TOKEN: &str = "fleet-admin-token-0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn wait_ready(base: &str, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        if let Ok(r) = http().get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what} not ready on {base}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct ControlPlaneProcess {
    child: Child,
    pub base: String,
}

impl ControlPlaneProcess {
    /// Starts the control plane over `data_dir` against the cluster of
    /// `kubeconfig`, creating tenants in `namespace`.
    pub async fn start(
        data_dir: &Path,
        kubeconfig: &Path,
        namespace: &str,
        extra: &[&str],
    ) -> ControlPlaneProcess {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let binary = Fleet::get()
            .images
            .release_dir
            .join("taskharbor-control-plane");
        let mut child = Command::new(&binary)
            .args(["--listen", &listen, "--data-dir"])
            .arg(data_dir)
            .args([
                "--tenants-namespace",
                namespace,
                "--fleet-sync-ms",
                "250",
                "--tenant-version",
                "0.1.0",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("TASKHARBOR_CP_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let base = format!("http://{listen}");
        wait_ready(&base, &mut child, "control plane").await;
        ControlPlaneProcess { child, base }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = http()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control plane reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Submits a waitlist signup and returns the HTTP status.
    pub async fn signup_status(&self, email: &str) -> u16 {
        http()
            .post(format!("{}/api/waitlist", self.base))
            .json(&json!({"email": email, "company": "Fleet"}))
            .send()
            .await
            .expect("signup")
            .status()
            .as_u16()
    }

    /// Signs `email` up and returns the signup id.
    pub async fn signup(&self, email: &str) -> i64 {
        assert_eq!(self.signup_status(email).await, 202);
        let (_, list) = self
            .admin(
                reqwest::Method::GET,
                "/api/admin/signups?status=pending",
                None,
            )
            .await;
        list["signups"]
            .as_array()
            .expect("signups")
            .iter()
            .find(|s| s["email"] == email)
            .and_then(|s| s["id"].as_i64())
            .expect("signup listed")
    }

    /// Approves signup `id` as `tenant`; returns the reveal URL.
    pub async fn approve(&self, id: i64, tenant: &str) -> String {
        let (status, approved) = self
            .admin(
                reqwest::Method::POST,
                &format!("/api/admin/signups/{id}/approve"),
                Some(json!({"tenant": tenant})),
            )
            .await;
        assert_eq!(status, 201, "{approved}");
        format!(
            "{}{}",
            self.base,
            approved["reveal"]["url"].as_str().expect("reveal url")
        )
    }

    /// Waits until the control plane reports the tenant `Ready`, then spends
    /// the reveal link; returns the token. A second reveal must be refused.
    pub async fn reveal_when_ready(&self, tenant: &str, url: &str) -> String {
        let deadline = Instant::now() + crate::support::POD_TIMEOUT;
        loop {
            let (_, t) = self
                .admin(
                    reqwest::Method::GET,
                    &format!("/api/admin/tenants/{tenant}"),
                    None,
                )
                .await;
            if t["phase"] == "Ready" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tenant {tenant} never Ready: {t}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let reveal = || async {
            let r = http()
                .post(url)
                .header("accept", "application/json")
                .send()
                .await
                .expect("reveal");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        };
        let (status, body) = reveal().await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().expect("token").to_owned();
        let (again, _) = reveal().await;
        assert_eq!(again, 410, "the reveal is one-time");
        token
    }
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real tenant server on loopback over a copy of a tenant database.
pub struct LocalServer {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn serve_copy(db: &Path) -> LocalServer {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(db, dir.path().join("taskharbor.db")).expect("copy database");
    let listen = format!("127.0.0.1:{}", free_port());
    let binary: PathBuf = Fleet::get().images.release_dir.join("taskharbor");
    let mut child = Command::new(&binary)
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let base = format!("http://{listen}");
    wait_ready(&base, &mut child, "tenant server").await;
    LocalServer {
        child,
        base,
        _dir: dir,
    }
}
