//! signup → approve → TaskHarbor created → operator makes the children →
//! pod readiness simulated → Ready → one-time reveal → the token works
//! against the real tenant server.

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Secret};
use kube::{Api, Client};
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskharbor_control_plane::domain::sha256_hex;
use taskharbor_operator::crd::{Phase, TaskHarbor};
use taskharbor_tests::k8s::{
    ControlPlane, Operator, TIMEOUT, eventually, namespace, simulate_pod_ready,
};

use crate::{
    app::{ADMIN_TOKEN, App},
    tenant::Tenant,
};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn admin(
    app: &App,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http()
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn signup(app: &App, email: &str) -> i64 {
    let response = http()
        .post(format!("{}/api/waitlist", app.base))
        .json(&json!({"email": email, "company": "Example"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let (_, list) = admin(
        app,
        reqwest::Method::GET,
        "/api/admin/signups?status=pending",
        None,
    )
    .await;
    list["signups"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["email"] == email)
        .and_then(|s| s["id"].as_i64())
        .expect("signup listed")
}

fn secret_token(secret: &Secret) -> String {
    let data = secret.data.as_ref().expect("secret data");
    String::from_utf8(data["bootstrap-token"].0.clone()).expect("utf-8")
}

pub async fn reveal(url: &str) -> (StatusCode, Value) {
    let response = http()
        .post(url)
        .header("accept", "application/json")
        .send()
        .await
        .expect("reveal");
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Approves `email` as `tenant`, makes the operator's pod ready, waits for
/// `Ready` and returns (reveal URL, Secret token).
pub async fn provision(
    client: &Client,
    ns: &str,
    app: &App,
    email: &str,
    tenant: &str,
) -> (String, String) {
    let id = signup(app, email).await;
    let (status, approved) = admin(
        app,
        reqwest::Method::POST,
        &format!("/api/admin/signups/{id}/approve"),
        Some(json!({"tenant": tenant})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{approved}");
    assert_eq!(approved["tenant_state"], "provisioning");
    let url = format!(
        "{}{}",
        app.base,
        approved["reveal"]["url"].as_str().expect("reveal url")
    );

    // The resource exists, made from the operator's types.
    let th = Api::<TaskHarbor>::namespaced(client.clone(), ns)
        .get(tenant)
        .await
        .expect("TaskHarbor created");
    assert_eq!(th.spec.tenant, tenant);
    assert!(!th.spec.suspend);

    // The operator makes its children.
    let name = format!("th-{tenant}");
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    eventually(TIMEOUT, "StatefulSet", || async {
        sts_api.get_opt(&name).await.ok().flatten()
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = eventually(TIMEOUT, "tenant Secret", || async {
        secrets.get_opt(&name).await.ok().flatten()
    })
    .await;

    // Not ready yet: the link answers 409 and stays valid.
    let (status, body) = reveal(&url).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The StatefulSet controller creates the pod; no kubelet runs it, so
    // simulate readiness as the operator's own tests do.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let pod = format!("{name}-0");
    eventually(TIMEOUT, "tenant pod", || async {
        pods.get_opt(&pod).await.ok().flatten()
    })
    .await;
    simulate_pod_ready(client, ns, &pod).await;

    eventually(TIMEOUT, "control plane sees Ready", || async {
        let (_, t) = admin(
            app,
            reqwest::Method::GET,
            &format!("/api/admin/tenants/{tenant}"),
            None,
        )
        .await;
        (t["phase"] == Phase::Ready.as_str()).then_some(())
    })
    .await;
    (url, secret_token(&secret))
}

pub async fn signup_approve_ready_then_the_token_is_revealed_exactly_once() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "cp-e2e").await;
    let operator = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    let app = App::start(client.clone(), &ns).await;

    let (url, expected) = provision(&client, &ns, &app, "ada@example.com", "ada").await;

    let (_, tenant) = admin(&app, reqwest::Method::GET, "/api/admin/tenants/ada", None).await;
    assert_eq!(tenant["state"], "ready");
    assert!(
        tenant["provisioning_seconds"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "{tenant}"
    );
    let events: Vec<&str> = tenant["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(events.first(), Some(&"approved (provisioning)"));
    assert_eq!(events.last(), Some(&"phase Ready"), "{events:?}");

    // GET only confirms; it does not spend the link.
    let page = http().get(&url).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("Show my admin token")
    );

    let (status, body) = reveal(&url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token");
    assert_eq!(token, expected, "the token is the tenant Secret's value");
    assert_eq!(body["tenant"], "ada");

    // A second reveal fails, by POST and GET alike.
    let (status, body) = reveal(&url).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "gone");
    assert_eq!(
        http().get(&url).send().await.expect("page").status(),
        StatusCode::GONE
    );
    // No new link once revealed.
    let (status, _) = admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/tenants/ada/reveal-link",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::GONE);

    // Only hashes are kept: the database files never hold the token or the link.
    let hash: Option<String> =
        sqlx::query_scalar("SELECT bootstrap_token_sha256 FROM tenants WHERE tenant = 'ada'")
            .fetch_one(&app.state.pool)
            .await
            .expect("row");
    assert_eq!(hash.as_deref(), Some(sha256_hex(token).as_str()));
    let link_token = url.rsplit('/').next().expect("token in url");
    for entry in std::fs::read_dir(app.dir.path()).expect("data dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(token), "bootstrap token stored in clear");
        assert!(!text.contains(link_token), "reveal token stored in clear");
    }

    let metrics = http()
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "taskharbor_cp_reveals_total 1",
        "taskharbor_cp_provisioning_seconds_count 1",
        "taskharbor_cp_tenants{phase=\"Ready\"} 1",
        "taskharbor_cp_approvals_total{mode=\"kube\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }

    // A name already taken in the cluster (not by us) is refused, and the
    // approval is undone.
    let squatter: taskharbor_operator::crd::TaskHarborSpec =
        serde_json::from_value(json!({"tenant": "taken", "version": "0.1.0"})).expect("spec");
    Api::<TaskHarbor>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &TaskHarbor::new("taken", squatter))
        .await
        .expect("squatter created");
    let id = signup(&app, "copycat@example.com").await;
    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/admin/signups/{id}/approve"),
        Some(json!({"tenant": "taken"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, signup_row) = admin(
        &app,
        reqwest::Method::GET,
        &format!("/api/admin/signups/{id}"),
        None,
    )
    .await;
    assert_eq!(signup_row["status"], "pending");
    assert_eq!(signup_row["tenant"], Value::Null);

    app.stop();
    operator.stop().await;
}

pub async fn suspend_resume_and_delete_go_through_the_resource() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "cp-ops").await;
    let operator = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    let app = App::start(client.clone(), &ns).await;
    let api: Api<TaskHarbor> = Api::namespaced(client.clone(), &ns);
    let id = signup(&app, "ops@example.com").await;
    let (status, _) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/admin/signups/{id}/approve"),
        Some(json!({"tenant": "ops"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // A lost link can be replaced while the token was never revealed.
    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/tenants/ops/reveal-link",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["reveal"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("/reveal/"))
    );

    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/tenants/ops/suspend",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(api.get("ops").await.expect("resource").spec.suspend);
    eventually(TIMEOUT, "phase Suspended recorded", || async {
        let (_, t) = admin(&app, reqwest::Method::GET, "/api/admin/tenants/ops", None).await;
        (t["phase"] == "Suspended" && t["state"] == "suspended").then_some(())
    })
    .await;

    let (status, _) = admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/tenants/ops/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!api.get("ops").await.expect("resource").spec.suspend);

    let (status, _) = admin(
        &app,
        reqwest::Method::DELETE,
        "/api/admin/tenants/ops",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually(TIMEOUT, "resource deleted (finalizer done)", || async {
        api.get_opt("ops")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    let (_, t) = admin(&app, reqwest::Method::GET, "/api/admin/tenants/ops", None).await;
    assert_eq!(t["state"], "deleted");
    let (status, _) = admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/tenants/ops/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.stop();
    operator.stop().await;
}

/// The whole new-customer path: the revealed token, given to the tenant
/// server as `TASKHARBOR_BOOTSTRAP_TOKEN` (what the operator's pod template
/// does), is a working admin token.
pub async fn revealed_token_opens_the_real_tenant_server() {
    // Build (or find) the binary first: a missing tenant server should fail fast.
    crate::tenant::binary().unwrap_or_else(|e| panic!("{e}"));
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "cp-path").await;
    let operator = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    let app = App::start(client.clone(), &ns).await;
    let (url, _) = provision(&client, &ns, &app, "grace@example.com", "grace").await;
    let (status, body) = reveal(&url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();

    let data = tempfile::tempdir().expect("tenant data dir");
    let tenant = Tenant::start(data.path(), &token).unwrap_or_else(|e| panic!("{e}"));
    let me = http()
        .get(format!("{}/api/me", tenant.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /api/me");
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["scopes"], json!(["admin"]), "{me}");
    let wrong = http()
        .get(format!("{}/api/me", tenant.base))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .expect("GET /api/me");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    app.stop();
    operator.stop().await;
}
