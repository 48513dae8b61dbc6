//! The public waitlist: JSON and the HTML form.

use axum::{
    body::Body,
    http::{StatusCode, header},
};
use serde_json::{Value, json};

use crate::{TestApp, error_details, json, text};

const IP: [u8; 4] = [192, 0, 2, 1];

async fn post_json(app: &TestApp, ip: [u8; 4], body: &str) -> (StatusCode, Value) {
    let response = app
        .send(
            TestApp::from(ip)
                .method("POST")
                .uri("/api/waitlist")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned()))
                .expect("request"),
        )
        .await;
    (response.status(), json(response).await)
}

/// The landing page's CSRF token: (cookie header value, hidden field value).
async fn csrf(app: &TestApp) -> (String, String) {
    let response = app
        .send(
            TestApp::from(IP)
                .uri("/")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("cookie set")
        .to_str()
        .expect("ascii")
        .to_owned();
    let html = text(response).await;
    let field = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("hidden csrf field")
        .to_owned();
    let pair = cookie.split(';').next().expect("pair").to_owned();
    (pair, field)
}

async fn post_form(
    app: &TestApp,
    ip: [u8; 4],
    cookie: Option<&str>,
    form: &str,
) -> (StatusCode, String) {
    let mut request = TestApp::from(ip)
        .method("POST")
        .uri("/api/waitlist")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .send(request.body(Body::from(form.to_owned())).expect("request"))
        .await;
    assert!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html")),
        "form posts get HTML"
    );
    (response.status(), text(response).await)
}

#[tokio::test]
async fn json_signup_is_stored_and_accepted() {
    let app = TestApp::new(&[]).await;
    let (status, body) = post_json(
        &app,
        IP,
        r#"{"email": " Ada@Example.com ", "company": "Analytical", "note": "for agents"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "accepted");
    let row: (String, Option<String>, Option<String>, String) =
        sqlx::query_as("SELECT email, company, note, status FROM signups")
            .fetch_one(&app.state.pool)
            .await
            .expect("one row");
    assert_eq!(
        row,
        (
            "Ada@Example.com".into(),
            Some("Analytical".into()),
            Some("for agents".into()),
            "pending".into()
        )
    );
}

#[tokio::test]
async fn bad_email_and_oversized_fields_get_422_with_details_and_store_nothing() {
    let app = TestApp::new(&[]).await;
    let body =
        json!({"email": "not-an-email", "company": "c".repeat(201), "note": "n".repeat(2001)});
    let (status, body) = post_json(&app, IP, &body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let details = error_details(&body, "validation_failed");
    assert_eq!(details["email"], "must be an email address");
    assert_eq!(details["company"], "must be at most 200 characters");
    assert_eq!(details["note"], "must be at most 2000 characters");
    let (status, body) = post_json(&app, IP, r#"{"company": "x"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_details(&body, "validation_failed")["email"],
        "is required"
    );
    assert!(app.signups().await.is_empty());
}

#[tokio::test]
async fn malformed_json_wrong_types_and_other_media_types_are_invalid_requests() {
    let app = TestApp::new(&[]).await;
    for body in [r#"{"email": "a@b.io""#, r#"{"email": 5}"#, "[]"] {
        let (status, reply) = post_json(&app, IP, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        error_details(&reply, "invalid_request");
    }
    let response = app
        .send(
            TestApp::from(IP)
                .method("POST")
                .uri("/api/waitlist")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("a@b.io"))
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    error_details(&json(response).await, "invalid_request");
    assert!(app.signups().await.is_empty());
}

#[tokio::test]
async fn oversized_body_is_refused_with_413() {
    let app = TestApp::new(&[]).await;
    let body = json!({"email": "a@b.io", "note": "x".repeat(20_000)}).to_string();
    let (status, reply) = post_json(&app, IP, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_details(&reply, "payload_too_large");
    assert!(app.signups().await.is_empty());
}

#[tokio::test]
async fn repeat_signup_gets_the_same_answer_and_keeps_one_row() {
    let app = TestApp::new(&[]).await;
    let first = post_json(&app, IP, r#"{"email": "grace@navy.mil"}"#).await;
    let again = post_json(
        &app,
        [192, 0, 2, 2],
        r#"{"email": "GRACE@Navy.MIL", "company": "x"}"#,
    )
    .await;
    assert_eq!(
        first, again,
        "a repeat must not reveal that the address is known"
    );
    assert_eq!(
        app.signups().await,
        [("grace@navy.mil".to_owned(), "pending".to_owned())]
    );
}

#[tokio::test]
async fn honeypot_gets_the_success_answer_but_nothing_is_stored() {
    let app = TestApp::new(&[]).await;
    let human = post_json(&app, IP, r#"{"email": "human@example.com"}"#).await;
    let bot = post_json(
        &app,
        [192, 0, 2, 3],
        r#"{"email": "bot@example.com", "website": "http://spam.example"}"#,
    )
    .await;
    assert_eq!(human, bot);
    let (cookie, field) = csrf(&app).await;
    let (status, html) = post_form(
        &app,
        [192, 0, 2, 4],
        Some(&cookie),
        &format!("csrf_token={field}&email=formbot%40example.com&website=x"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Thank you"));
    assert_eq!(
        app.signups().await,
        [("human@example.com".to_owned(), "pending".to_owned())]
    );
}

#[tokio::test]
async fn landing_page_sets_an_httponly_samesite_csrf_cookie_matching_the_hidden_field() {
    let app = TestApp::new(&[]).await;
    let response = app
        .send(
            TestApp::from(IP)
                .uri("/")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not Secure unless configured");
    let html = text(response).await;
    let value = cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("value");
    assert!(html.contains(&format!("value=\"{value}\"")));
    assert!(html.contains("action=\"/api/waitlist\""));
    let secure = TestApp::new(&["--secure-cookies"]).await;
    let response = secure
        .send(
            TestApp::from(IP)
                .uri("/")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("; Secure")
    );
}

#[tokio::test]
async fn form_without_or_with_a_wrong_csrf_token_is_refused_and_re_rendered() {
    let app = TestApp::new(&[]).await;
    let (status, html) = post_form(&app, IP, None, "email=a%40example.com").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Your form expired"));
    assert!(html.contains("value=\"a@example.com\""), "keeps the value");
    let (cookie, _) = csrf(&app).await;
    let wrong = "0".repeat(64);
    let (status, _) = post_form(
        &app,
        IP,
        Some(&cookie),
        &format!("csrf_token={wrong}&email=a%40example.com"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // JSON answer for a form post that asks for JSON.
    let response = app
        .send(
            TestApp::from(IP)
                .method("POST")
                .uri("/api/waitlist")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from("email=a%40example.com"))
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    error_details(&json(response).await, "forbidden");
    assert!(app.signups().await.is_empty());
}

#[tokio::test]
async fn form_with_csrf_signs_up_and_bad_input_re_renders_escaped_values() {
    let app = TestApp::new(&[]).await;
    let (cookie, field) = csrf(&app).await;
    let (status, html) = post_form(
        &app,
        IP,
        Some(&cookie),
        &format!("csrf_token={field}&email=bad&company=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("must be an email address"));
    assert!(html.contains("&lt;script&gt;"), "autoescaped");
    assert!(!html.contains("<script>alert"), "never raw");
    let (status, html) = post_form(
        &app,
        IP,
        Some(&cookie),
        &format!("csrf_token={field}&email=ok%40example.com&company=ACME&note="),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Thank you"));
    assert_eq!(
        app.signups().await,
        [("ok@example.com".to_owned(), "pending".to_owned())]
    );
}

#[tokio::test]
async fn rate_limit_is_per_socket_address_and_sends_retry_after() {
    let app = TestApp::new(&["--signup-rate-limit", "2"]).await;
    for i in 0..2 {
        let (status, _) = post_json(&app, IP, &format!(r#"{{"email": "u{i}@example.com"}}"#)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let response = app
        .send(
            TestApp::from(IP)
                .method("POST")
                .uri("/api/waitlist")
                .header(header::CONTENT_TYPE, "application/json")
                // Without --trust-proxy a forged X-Forwarded-For changes nothing.
                .header("x-forwarded-for", "203.0.113.9")
                .body(Body::from(r#"{"email": "u9@example.com"}"#))
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=600).contains(&retry));
    error_details(&json(response).await, "rate_limited");
    // Another address is not affected.
    let (status, _) = post_json(&app, [192, 0, 2, 77], r#"{"email": "other@example.com"}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        app.signups().await.len(),
        3,
        "the limited signup was not stored"
    );
    // The HTML form gets a friendly page with the same status.
    let (status, html) = post_form(&app, IP, None, "email=x%40example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(html.contains("Too many signups"));
}

#[tokio::test]
async fn with_trust_proxy_the_last_forwarded_address_is_limited() {
    let app = TestApp::new(&["--signup-rate-limit", "1", "--trust-proxy"]).await;
    let send = |xff: &'static str, email: &'static str| {
        let app = &app;
        async move {
            app.send(
                TestApp::from([10, 0, 0, 1])
                    .method("POST")
                    .uri("/api/waitlist")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("x-forwarded-for", xff)
                    .body(Body::from(format!(r#"{{"email": "{email}"}}"#)))
                    .expect("request"),
            )
            .await
            .status()
        }
    };
    assert_eq!(
        send("198.51.100.1", "a@example.com").await,
        StatusCode::ACCEPTED
    );
    // Same proxy socket, different client: allowed.
    assert_eq!(
        send("198.51.100.2", "b@example.com").await,
        StatusCode::ACCEPTED
    );
    // A client cannot escape by prepending fake entries.
    assert_eq!(
        send("1.1.1.1, 198.51.100.1", "c@example.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
