//! The platform-admin API without a cluster, reveal-link states, metrics and health.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::json;
use taskharbor_control_plane::{domain, store};
use taskharbor_operator::crd::TaskHarbor;

use crate::{ADMIN_TOKEN, TestApp, error_details, json, text};

async fn signup(app: &TestApp, email: &str, company: &str) -> i64 {
    let response = app
        .send(
            TestApp::from([192, 0, 2, 1])
                .method("POST")
                .uri("/api/waitlist")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"email": email, "company": company}).to_string(),
                ))
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    sqlx::query_scalar("SELECT id FROM signups WHERE email_norm = lower(?)")
        .bind(email)
        .fetch_one(&app.state.pool)
        .await
        .expect("stored")
}

#[tokio::test]
async fn admin_api_needs_the_admin_token() {
    let app = TestApp::new(&[]).await;
    let id = signup(&app, "a@example.com", "A").await;
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token-00"),
        Some("Basic YWRtaW46YWRtaW4="),
        Some(&format!("Bearer {ADMIN_TOKEN}x")),
    ] {
        for (method, path) in [
            ("GET", "/api/admin/signups".to_owned()),
            ("POST", format!("/api/admin/signups/{id}/approve")),
            ("POST", format!("/api/admin/signups/{id}/reject")),
            ("GET", "/api/admin/tenants".to_owned()),
            ("DELETE", "/api/admin/tenants/acme".to_owned()),
        ] {
            let mut request = Request::builder().method(method).uri(&path);
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let response = app
                .send(
                    request
                        .body(Body::from(r#"{"tenant":"acme"}"#))
                        .expect("request"),
                )
                .await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            error_details(&json(response).await, "unauthorized");
        }
    }
    assert_eq!(app.signups().await[0].1, "pending", "nothing decided");
    // X-API-Key works as well as Bearer.
    let response = app
        .send(
            Request::builder()
                .uri("/api/admin/signups")
                .header("x-api-key", ADMIN_TOKEN)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn weak_admin_token_is_refused_at_startup() {
    let config = <taskharbor_control_plane::config::Config as clap::Parser>::try_parse_from([
        "cp",
        "--admin-token",
        "short",
    ])
    .expect("parses");
    assert!(taskharbor_control_plane::hash_admin_token(&config.admin_token).is_err());
    // Debug output of the config never shows the token.
    assert!(!format!("{config:?}").contains("short"));
}

#[tokio::test]
async fn signups_list_filters_by_status_and_search() {
    let app = TestApp::new(&[]).await;
    let a = signup(&app, "ada@example.com", "Analytical Engines").await;
    let b = signup(&app, "grace@navy.mil", "US Navy").await;
    let _c = signup(&app, "linus@example.org", "100%_real").await;
    assert_eq!(
        app.admin("POST", &format!("/api/admin/signups/{b}/reject"), None)
            .await
            .0,
        200
    );
    let (status, body) = app.admin("GET", "/api/admin/signups", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["signups"].as_array().expect("list").len(), 3);
    let (_, body) = app
        .admin("GET", "/api/admin/signups?status=pending", None)
        .await;
    let emails: Vec<&str> = body["signups"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["email"].as_str())
        .collect();
    assert_eq!(emails, ["linus@example.org", "ada@example.com"]);
    let (_, body) = app
        .admin("GET", "/api/admin/signups?q=ANALYTICAL", None)
        .await;
    assert_eq!(body["signups"][0]["id"], a);
    assert_eq!(body["signups"].as_array().expect("list").len(), 1);
    // LIKE wildcards in the search are literal.
    let (_, body) = app.admin("GET", "/api/admin/signups?q=%25_", None).await;
    assert_eq!(body["signups"].as_array().expect("list").len(), 1);
    let (status, body) = app
        .admin("GET", "/api/admin/signups?status=maybe", None)
        .await;
    assert_eq!(status, 400);
    error_details(&body, "invalid_request");
    let (status, body) = app
        .admin("GET", &format!("/api/admin/signups/{b}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "rejected");
    assert_eq!(
        app.admin("GET", "/api/admin/signups/999", None).await.0,
        404
    );
    assert_eq!(
        app.admin("GET", "/api/admin/signups/abc", None).await.0,
        404
    );
}

#[tokio::test]
async fn approval_without_a_cluster_renders_the_resource_yaml_and_marks_it_manual() {
    let app = TestApp::new(&[
        "--tenants-namespace",
        "customers",
        "--tenant-version",
        "1.2.3",
    ])
    .await;
    let id = signup(&app, "ada@example.com", "A").await;
    let (status, body) = app
        .admin(
            "POST",
            &format!("/api/admin/signups/{id}/approve"),
            Some(json!({"tenant": "ada-co"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved (manual)");
    let th: TaskHarbor =
        serde_yaml::from_str(body["yaml"].as_str().expect("yaml")).expect("a TaskHarbor");
    assert_eq!(th.metadata.name.as_deref(), Some("ada-co"));
    assert_eq!(th.metadata.namespace.as_deref(), Some("customers"));
    assert_eq!(th.spec.tenant, "ada-co");
    assert_eq!(th.spec.version, "1.2.3");
    assert!(th.spec.validate().is_ok());
    assert!(
        body["yaml"]
            .as_str()
            .expect("yaml")
            .contains("apiVersion: taskharbor.dev/v1alpha1")
    );
    let (_, list) = app
        .admin("GET", "/api/admin/signups?status=approved", None)
        .await;
    assert_eq!(list["signups"][0]["status"], "approved (manual)");
    assert_eq!(list["signups"][0]["tenant"], "ada-co");
    let (_, tenant) = app.admin("GET", "/api/admin/tenants/ada-co", None).await;
    assert_eq!(tenant["state"], "approved (manual)");
    assert_eq!(tenant["events"][0]["event"], "approved (manual)");
    // Deciding twice is a conflict; the cluster operations need a cluster.
    let (status, body) = app
        .admin(
            "POST",
            &format!("/api/admin/signups/{id}/approve"),
            Some(json!({"tenant": "other"})),
        )
        .await;
    assert_eq!(status, 409);
    error_details(&body, "conflict");
    assert_eq!(
        app.admin("POST", &format!("/api/admin/signups/{id}/reject"), None)
            .await
            .0,
        409
    );
    assert_eq!(
        app.admin("POST", "/api/admin/tenants/ada-co/suspend", None)
            .await
            .0,
        409
    );
    assert_eq!(
        app.admin("DELETE", "/api/admin/tenants/ada-co", None)
            .await
            .0,
        409
    );
    assert_eq!(
        app.admin("POST", "/api/admin/tenants/ada-co/reveal-link", None)
            .await
            .0,
        409
    );
    assert_eq!(
        app.admin("POST", "/api/admin/tenants/nobody/suspend", None)
            .await
            .0,
        404
    );
    let (status, tenants) = app.admin("GET", "/api/admin/tenants", None).await;
    assert_eq!(status, 200);
    assert_eq!(tenants["tenants"][0]["tenant"], "ada-co");
    assert_eq!(tenants["tenants"][0]["revealed"], false);
}

#[tokio::test]
async fn approval_validates_the_tenant_id_and_refuses_a_taken_one() {
    let app = TestApp::new(&[]).await;
    let a = signup(&app, "a@example.com", "A").await;
    let b = signup(&app, "b@example.com", "B").await;
    for bad in ["Acme", "-x", "a_b", "", &"a".repeat(41)] {
        let (status, body) = app
            .admin(
                "POST",
                &format!("/api/admin/signups/{a}/approve"),
                Some(json!({"tenant": bad})),
            )
            .await;
        assert_eq!(status, 422, "{bad:?}");
        let details = error_details(&body, "validation_failed");
        assert!(
            details["tenant"]
                .as_str()
                .is_some_and(|m| m.contains("DNS label")),
            "{details}"
        );
    }
    let (status, body) = app
        .admin(
            "POST",
            &format!("/api/admin/signups/{a}/approve"),
            Some(json!({"tenant": 7})),
        )
        .await;
    assert_eq!(status, 400);
    error_details(&body, "invalid_request");
    assert_eq!(
        app.signups().await[0].1,
        "pending",
        "a failed approval stores nothing"
    );
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.state.pool)
        .await
        .expect("count");
    assert_eq!(tenants, 0);
    assert_eq!(
        app.admin(
            "POST",
            &format!("/api/admin/signups/{a}/approve"),
            Some(json!({"tenant": "acme"}))
        )
        .await
        .0,
        200
    );
    let (status, body) = app
        .admin(
            "POST",
            &format!("/api/admin/signups/{b}/approve"),
            Some(json!({"tenant": "acme"})),
        )
        .await;
    assert_eq!(status, 409);
    assert!(error_details(&body, "conflict").is_object());
    assert_eq!(app.signups().await[1].1, "pending");
    assert_eq!(
        app.admin(
            "POST",
            "/api/admin/signups/999/approve",
            Some(json!({"tenant": "zzz"}))
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn reveal_links_refuse_unknown_unready_expired_and_used_tokens() {
    let app = TestApp::new(&[]).await;
    let id = signup(&app, "a@example.com", "A").await;
    let pool = &app.state.pool;
    store::approve(pool, id, "acme", "provisioning")
        .await
        .expect("approved");
    let live = domain::random_token();
    store::insert_reveal(
        pool,
        &domain::sha256_hex(&live),
        "acme",
        std::time::Duration::from_secs(3600),
    )
    .await
    .expect("link");
    let reveal = |token: String, method: &'static str| {
        let app = &app;
        async move {
            let response = app
                .send(
                    Request::builder()
                        .method(method)
                        .uri(format!("/reveal/{token}"))
                        .header(header::ACCEPT, "application/json")
                        .body(Body::empty())
                        .expect("request"),
                )
                .await;
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            response.status().as_u16()
        }
    };
    assert_eq!(reveal(domain::random_token(), "POST").await, 404);
    assert_eq!(reveal(live.clone(), "GET").await, 409, "still provisioning");
    assert_eq!(reveal(live.clone(), "POST").await, 409);
    // A link about to expire gets a full lifetime once the tenant is Ready.
    let short = domain::random_token();
    store::insert_reveal(
        pool,
        &domain::sha256_hex(&short),
        "acme",
        std::time::Duration::from_secs(1),
    )
    .await
    .expect("link");
    store::record_phase(pool, "acme", "Ready", std::time::Duration::from_secs(3600))
        .await
        .expect("ready");
    let expires: i64 = sqlx::query_scalar("SELECT expires_at FROM reveals WHERE token_sha256 = ?")
        .bind(domain::sha256_hex(&short))
        .fetch_one(pool)
        .await
        .expect("row");
    assert!(expires > store::now_ms() + 3_500_000, "extended from Ready");
    let page = app
        .send(
            Request::builder()
                .uri(format!("/reveal/{live}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        text(page).await.contains("Show my admin token"),
        "GET only confirms"
    );
    // Expired link.
    let expired = domain::random_token();
    store::insert_reveal(
        pool,
        &domain::sha256_hex(&expired),
        "acme",
        std::time::Duration::ZERO,
    )
    .await
    .expect("link");
    assert_eq!(reveal(expired, "POST").await, 410);
    // Used link: a consumed reveal voids every link of the tenant.
    assert!(
        store::consume_reveal(pool, &domain::sha256_hex(&live), "acme", "hash")
            .await
            .expect("spent")
    );
    assert_eq!(reveal(live.clone(), "POST").await, 410);
    assert!(
        !store::consume_reveal(pool, &domain::sha256_hex(&live), "acme", "hash")
            .await
            .expect("db")
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM reveals")
        .fetch_all(pool)
        .await
        .expect("rows");
    assert!(!stored.contains(&live), "only hashes are stored");
}

#[tokio::test]
async fn metrics_count_the_fleet_without_personal_labels() {
    let app = TestApp::new(&[]).await;
    let a = signup(&app, "secret-person@example.com", "A").await;
    signup(&app, "b@example.com", "B").await;
    app.admin(
        "POST",
        &format!("/api/admin/signups/{a}/approve"),
        Some(json!({"tenant": "hidden-tenant"})),
    )
    .await;
    let response = app
        .send(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = text(response).await;
    for line in [
        "taskharbor_cp_waitlist_size 1",
        "taskharbor_cp_signups{status=\"approved\"} 1",
        "taskharbor_cp_tenants{phase=\"manual\"} 1",
        "taskharbor_cp_tenants{phase=\"Ready\"} 0",
        "taskharbor_cp_signup_requests_total{result=\"created\"} 2",
        "taskharbor_cp_approvals_total{mode=\"manual\"} 1",
        "taskharbor_cp_reveals_total 0",
        "taskharbor_cp_provisioning_seconds_count 0",
        "taskharbor_cp_errors_total{kind=\"kube\"} 0",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    assert!(!body.contains("secret-person") && !body.contains("hidden-tenant"));
}

#[tokio::test]
async fn health_endpoints_admin_page_and_unknown_routes() {
    let app = TestApp::new(&[]).await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .send(
                Request::builder()
                    .uri(path)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let response = app
        .send(
            Request::builder()
                .uri("/admin")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains("--kube=off"));
    let response = app
        .send(
            Request::builder()
                .uri("/nope")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    error_details(&json(response).await, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_of_one_signup_let_exactly_one_win() {
    let app = TestApp::new(&[]).await;
    let id = signup(&app, "race@example.com", "R").await;
    let path = format!("/api/admin/signups/{id}/approve");
    let (a, b) = tokio::join!(
        app.admin("POST", &path, Some(json!({"tenant": "race-a"}))),
        app.admin("POST", &path, Some(json!({"tenant": "race-b"}))),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.state.pool)
        .await
        .expect("count");
    assert_eq!(tenants, 1);
}
