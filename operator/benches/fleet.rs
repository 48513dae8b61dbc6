//! Fleet benchmark: `cargo bench -p taskharbor-operator --bench fleet`.
//!
//! Starts the local Kubernetes 1.20 control plane, runs the real operator
//! binary as a child process, creates N `TaskHarbor` resources (default
//! 1000, override with `FLEET_SIZE`) and measures:
//! - time from the first create until every tenant's Secret, Service,
//!   NetworkPolicy and StatefulSet exists, and until every status is written;
//! - the operator's peak RSS (VmHWM of the child process);
//! - API writes during one full steady-state resync, from the operator's own
//!   `/metrics` (target: zero when nothing changed).
//!
//! Prints a Markdown table for BENCHMARKS.md (section "Operator").

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Secret, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use taskharbor_operator::crd::{TaskHarbor, TaskHarborSpec};
use taskharbor_tests::k8s::{ControlPlane, StartOptions, install_crd, namespace};

fn metrics_text(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Sum of every sample of `metric` (all label sets).
fn metric_sum(text: &str, metric: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[metric.len()..];
            rest.starts_with(' ') || rest.starts_with('{')
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn count<K>(client: &Client, ns: &str) -> usize
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=taskharbor-operator");
    Api::<K>::namespaced(client.clone(), ns)
        .list_metadata(&lp)
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let size: usize = std::env::var("FLEET_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let resync_seconds = 60;
    // 1,000 ClusterIP Services do not fit the script's /24 service range.
    let cp = match ControlPlane::start(StartOptions {
        tmp_dir: Path::new(env!("CARGO_TARGET_TMPDIR")),
        run_prefix: "k8s-control-plane",
        service_range: Some("10.96.0.0/16"),
    }) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            cp.stop();
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(cp, size, resync_seconds));
    cp.stop();
    match result {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(cp: &ControlPlane, size: usize, resync_seconds: u64) -> Result<String, String> {
    let client = cp.client().await;
    install_crd(&client).await?;
    let ns = namespace(&client, "bench").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskharbor-operator"))
        .args(["run", "--leader-elect", "false", "--watch-namespace", &ns])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--resync-seconds", &resync_seconds.to_string()])
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the operator: {e}"))?;
    let pid = child.id();
    let outcome = measure(&client, &ns, port, pid, size, resync_seconds).await;
    // Graceful stop, as the kubelet would do it.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut exited_cleanly = false;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            exited_cleanly = status.success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut report = outcome?;
    report.push_str(&format!(
        "| operator exited 0 on SIGTERM | {} |\n",
        if exited_cleanly { "yes" } else { "no" }
    ));
    Ok(report)
}

async fn measure(
    client: &Client,
    ns: &str,
    port: u16,
    pid: u32,
    size: usize,
    resync_seconds: u64,
) -> Result<String, String> {
    let ready = Instant::now();
    while metrics_text(port).is_none() {
        if ready.elapsed() > Duration::from_secs(30) {
            return Err("operator metrics endpoint never came up".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_idle = vm_hwm_kib(pid).unwrap_or(0);

    let api: Api<TaskHarbor> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let created: Vec<Result<(), String>> = stream::iter(0..size)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("t{i:04}");
                let spec: TaskHarborSpec = serde_json::from_value(serde_json::json!({
                    "tenant": name, "version": "0.1.0", "host": format!("{name}.example.com")
                }))
                .map_err(|e| e.to_string())?;
                api.create(&PostParams::default(), &TaskHarbor::new(&name, spec))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    if let Some(Err(e)) = created.into_iter().find(Result::is_err) {
        return Err(format!("creating resources: {e}"));
    }
    let create_time = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(1800);
    let children_time = loop {
        let counts = [
            count::<Secret>(client, ns).await,
            count::<Service>(client, ns).await,
            count::<NetworkPolicy>(client, ns).await,
            count::<StatefulSet>(client, ns).await,
        ];
        if counts.iter().all(|c| *c >= size) {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("children incomplete after 30 min: {counts:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let status_time = loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let with_status = list
            .items
            .iter()
            .filter(|th| th.status.as_ref().and_then(|s| s.phase).is_some())
            .count();
        if with_status >= size {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("only {with_status} statuses after 30 min"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Quiescence: no write for 10 s (the StatefulSet controller's status
    // updates still trigger reconciles, which must not write).
    let mut last = metric_sum(
        &metrics_text(port).unwrap_or_default(),
        "taskharbor_operator_api_writes_total",
    );
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = metric_sum(
            &metrics_text(port).unwrap_or_default(),
            "taskharbor_operator_api_writes_total",
        );
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
        if Instant::now() > deadline {
            return Err("operator never stopped writing".into());
        }
    }
    let initial_writes = last;

    // One full steady-state resync: every resource reconciled again.
    let text = metrics_text(port).unwrap_or_default();
    let reconciles_before = metric_sum(&text, "taskharbor_operator_reconciles_total");
    let writes_before = metric_sum(&text, "taskharbor_operator_api_writes_total");
    let resync_started = Instant::now();
    let reconciles_after = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = metrics_text(port).unwrap_or_default();
        let reconciles = metric_sum(&text, "taskharbor_operator_reconciles_total");
        if reconciles >= reconciles_before + size as u64 {
            break reconciles;
        }
        if resync_started.elapsed() > Duration::from_secs(resync_seconds * 3 + 60) {
            return Err(format!(
                "resync incomplete: {} of {size} reconciles",
                reconciles - reconciles_before
            ));
        }
    };
    let text = metrics_text(port).unwrap_or_default();
    let resync_writes = metric_sum(&text, "taskharbor_operator_api_writes_total") - writes_before;
    let failures = metric_sum(&text, "taskharbor_operator_reconcile_failures_total");
    let rss_peak = vm_hwm_kib(pid).unwrap_or(0);

    Ok(format!(
        "| metric | value |\n|---|---|\n\
         | TaskHarbor resources | {size} |\n\
         | create calls (16 in flight) | {:.1} s |\n\
         | all Secrets, Services, NetworkPolicies, StatefulSets exist | {:.1} s after the first create |\n\
         | every status written | {:.1} s after the first create |\n\
         | operator API writes to converge | {initial_writes} ({:.1} per tenant) |\n\
         | steady-state resync: reconciles / API writes | {} / {resync_writes} |\n\
         | reconcile failures (all reasons, whole run) | {failures} |\n\
         | operator peak RSS (VmHWM) idle / with fleet | {:.1} MiB / {:.1} MiB |\n",
        create_time.as_secs_f64(),
        children_time.as_secs_f64(),
        status_time.as_secs_f64(),
        initial_writes as f64 / size as f64,
        reconciles_after - reconciles_before,
        rss_idle as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
    ))
}
