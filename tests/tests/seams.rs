//! The contract between what starts the tenant server (the operator's
//! StatefulSet, the single-tenant chart, the container image) and the server
//! itself: every environment variable they set is one the server's clap
//! `Config` reads, the probes they point at answer on the real router, and
//! the port they expose is the one the server listens on. These fail on
//! drift, e.g. when a setting is renamed on one side only.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use axum::{body::Body, http::Request};
use clap::CommandFactory;
use k8s_openapi::api::core::v1::Container;
use taskharbor::{AppState, config::Config};
use taskharbor_operator::{
    controller::build::{BuildConfig, TenantSecrets, build},
    crd::{TaskHarbor, TaskHarborSpec},
};
use tower::ServiceExt;

/// Every environment variable `taskharbor serve` reads: the arguments of
/// its clap `Config` (flattened into the top-level command). Subcommands'
/// own variables (e.g. the MCP bridge's `TASKHARBOR_TOKEN`) do not count.
fn server_env() -> BTreeSet<String> {
    taskharbor::config::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

fn operator_container(spec: serde_json::Value) -> Container {
    let spec: TaskHarborSpec = serde_json::from_value(spec).expect("spec");
    let mut th = TaskHarbor::new("acme", spec);
    th.metadata.namespace = Some("tenants".into());
    th.metadata.uid = Some("uid-1".into());
    let secrets = TenantSecrets {
        bootstrap_token: format!("th_{}", "a".repeat(43)),
        secret_key: "k".repeat(43),
    };
    let desired = build(&th, &BuildConfig::default(), &secrets).expect("builds");
    desired
        .stateful_set
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].clone())
        .expect("container")
}

fn env_names(container: &Container) -> Vec<String> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect()
}

#[test]
fn the_operator_sets_only_variables_the_server_reads() {
    let known = server_env();
    assert!(
        known.contains("TASKHARBOR_DATA_DIR"),
        "clap introspection broke: {known:?}"
    );
    for spec in [
        serde_json::json!({"tenant": "acme", "version": "0.1.0"}),
        serde_json::json!({"tenant": "acme", "version": "0.1.0", "sync": {"enabled": true}}),
    ] {
        let container = operator_container(spec);
        let names = env_names(&container);
        let unknown: Vec<_> = names.iter().filter(|n| !known.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "the operator sets {unknown:?}, which the server does not read (it reads {known:?})"
        );
        // Every value the server would parse must parse: run the server's own
        // parser over the literal values the operator sets.
        let mut argv = vec!["taskharbor".to_owned()];
        for env in container.env.iter().flatten() {
            if let Some(value) = &env.value {
                let arg = taskharbor::config::Cli::command()
                    .get_arguments()
                    .find(|a| a.get_env().is_some_and(|e| e == env.name.as_str()))
                    .and_then(|a| a.get_long().map(str::to_owned))
                    .expect("flag of the variable");
                argv.push(format!("--{arg}={value}"));
            }
        }
        <taskharbor::config::Cli as clap::Parser>::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("the server refuses the operator's values {argv:?}: {e}"));
    }
}

#[tokio::test]
async fn the_operators_probes_and_port_match_the_real_server() {
    let container = operator_container(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
    let port = container.ports.as_ref().expect("ports")[0].container_port;
    let listen = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "TASKHARBOR_LISTEN")
        .and_then(|e| e.value.clone())
        .expect("listen address");
    assert!(
        listen.ends_with(&format!(":{port}")),
        "{listen} vs port {port}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let state = AppState::open(Config::for_data_dir(dir.path().to_owned()))
        .await
        .expect("server state");
    let router = taskharbor::router(state.clone());
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        let path = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
            .expect("http probe");
        let response = router
            .clone()
            .oneshot(Request::get(&path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200, "probe {path}");
    }
    state.store.close().await;
}

/// The chart's rendered environment must only name variables the server reads.
#[test]
fn the_single_tenant_chart_sets_only_variables_the_server_reads() {
    let helm =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/k8s-tools/bin/helm");
    assert!(
        helm.exists(),
        "{} missing: run .ci/operator-prereqs.sh (chart-check.sh installs helm)",
        helm.display()
    );
    let chart = taskharbor_tests::k8s::repo_root().join("charts/taskharbor");
    let output = Command::new(&helm)
        .args(["template", "t"])
        .arg(&chart)
        .args([
            "--set",
            "baseUrl=https://tasks.example.com",
            "--set",
            "backup.enabled=true",
        ])
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = String::from_utf8_lossy(&output.stdout);
    let known = server_env();
    let mut seen = 0;
    for doc in rendered.split("\n---") {
        let Ok(value) = serde_yaml::from_str::<serde_json::Value>(doc) else {
            continue;
        };
        let kind = value["kind"].as_str().unwrap_or_default();
        let pod = match kind {
            "StatefulSet" => &value["spec"]["template"]["spec"],
            "CronJob" => &value["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        for container in pod["containers"].as_array().expect("containers") {
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().expect("name");
                // Downward-API helpers referenced by args, not settings.
                if name == "POD_NAME" {
                    continue;
                }
                assert!(
                    known.contains(name),
                    "{kind} sets {name}, unknown to the server"
                );
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 8,
        "too few variables found ({seen}): did rendering change?"
    );
}
