//! The control plane killed (SIGKILL) between recording an approval and
//! creating its `TaskHarbor` resource: the approval is in its database, the
//! resource is not in the cluster. Restarted, it completes the approval
//! (repair on start) and the tenant runs. Its waitlist rate limit survives
//! the restart too.
//!
//! "Between" is made exact without a test hook in the binary: the control
//! plane reaches the API server through a TCP relay that the test freezes
//! before approving, so the create request never leaves the relay while the
//! approval is already committed; then the process is killed.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::Api;
use serde_json::json;
use taskharbor_operator::crd::TaskHarbor;
use taskharbor_tests::k8s::{ControlPlane, Operator, eventually, namespace, unique};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{
    cp::{ADMIN_TOKEN, ControlPlaneProcess},
    lifecycle::OPERATOR_FLAGS,
    support::{Fleet, Tenant, http, pod_url, ready_pod},
};

/// A loopback TCP relay to `upstream` that holds every byte while frozen.
struct Relay {
    port: u16,
    frozen: Arc<AtomicBool>,
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let gate = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, gate.clone()));
                tokio::spawn(pump(sr, cw, gate.clone()));
            }
        });
        Relay { port, frozen }
    }
}

/// The API server's `host:port` from a kubeconfig.
fn api_server(kubeconfig: &Path) -> String {
    std::fs::read_to_string(kubeconfig)
        .expect("kubeconfig")
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://").map(str::to_owned))
        .expect("server line")
}

/// A copy of `kubeconfig` in `dir` whose server is the relay on `port`
/// (the API server's certificate names 127.0.0.1, so TLS still verifies).
fn relayed_kubeconfig(kubeconfig: &Path, port: u16, dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let path = dir.join("kubeconfig-relayed");
    std::fs::write(
        &path,
        text.replace(
            &format!("server: https://{}", api_server(kubeconfig)),
            &format!("server: https://127.0.0.1:{port}"),
        ),
    )
    .expect("write kubeconfig");
    path
}

pub async fn approval_interrupted_by_a_kill_is_completed_on_restart_and_rate_limits_persist() {
    let fleet = Fleet::get();
    let cp = ControlPlane::get();
    let client = cp.client().await;
    let ns = namespace(&client, "repair").await;
    fleet.node.pv(&unique("repair"), "1Gi");
    let operator = Operator::start(client.clone(), &ns, OPERATOR_FLAGS);
    let data = tempfile::tempdir().expect("temp dir");
    let relay = Relay::start(api_server(&cp.kubeconfig)).await;
    let kubeconfig = relayed_kubeconfig(&cp.kubeconfig, relay.port, data.path());
    let limit = [
        "--signup-rate-limit",
        "2",
        "--signup-rate-window-secs",
        "3600",
    ];
    let first = ControlPlaneProcess::start(data.path(), &kubeconfig, &ns, &limit).await;

    let id = first.signup("repair@example.com").await;
    assert_eq!(first.signup_status("other@example.com").await, 202);

    // Freeze the way to the API server, approve, and kill the process as
    // soon as the approval is committed (the create is stuck in the relay).
    relay.frozen.store(true, Ordering::SeqCst);
    let base = first.base.clone();
    let approve = tokio::spawn(async move {
        http()
            .post(format!("{base}/api/admin/signups/{id}/approve"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"tenant": "mended"}))
            .send()
            .await
    });
    eventually(Duration::from_secs(30), "approval recorded", || async {
        let (_, t) = first
            .admin(reqwest::Method::GET, "/api/admin/tenants/mended", None)
            .await;
        (t["state"] == "provisioning").then_some(())
    })
    .await;
    first.kill9();
    assert!(
        approve.await.expect("task").is_err(),
        "the approval request died with the process"
    );
    relay.frozen.store(false, Ordering::SeqCst);
    let resources: Api<TaskHarbor> = Api::namespaced(client.clone(), &ns);
    assert!(
        resources.get_opt("mended").await.expect("list").is_none(),
        "the resource must not exist yet: the kill came between the two steps"
    );

    // Restart over the same database: the repair creates the resource.
    let second = ControlPlaneProcess::start(data.path(), &kubeconfig, &ns, &limit).await;
    let th = eventually(Duration::from_secs(30), "resource re-created", || async {
        resources.get_opt("mended").await.ok().flatten()
    })
    .await;
    assert_eq!(th.spec.tenant, "mended");
    let pod = ready_pod(&client, &ns, "th-mended-0", |_| true).await;
    // The admin never saw the link (the answer died): a new one is issued.
    let (status, link) = second
        .admin(
            reqwest::Method::POST,
            "/api/admin/tenants/mended/reveal-link",
            None,
        )
        .await;
    assert!(status < 300, "{link}");
    let url = format!(
        "{}{}",
        second.base,
        link["reveal"]["url"]
            .as_str()
            .or(link["url"].as_str())
            .expect("url")
    );
    let token = second.reveal_when_ready("mended", &url).await;
    Tenant {
        base: pod_url(&pod),
        token,
    }
    .assert_serves_as_admin()
    .await;

    // Two signups from this address before the kill; the limit is 2 per hour.
    assert_eq!(
        second.signup_status("third@example.com").await,
        429,
        "the restart reset the rate limit"
    );
    operator.stop().await;
}
