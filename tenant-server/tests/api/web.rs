//! The dashboard over HTTP: first-admin setup, sign-in, session cookies and
//! their flags, CSRF, sign-out, expiry, the pages themselves, and the
//! end-to-end browser scenario (tests/e2e/dashboard.mjs in headless
//! Chromium via playwright-core; run `.ci/web-prereqs.sh` first).

use crate::support::TestServer;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use taskharbor::store;

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A browser without a cookie jar: we carry the cookies by hand, so the
/// tests see exactly what the server sets.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
    csrf: String,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `Set-Cookie` line for `name`, if any.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of a hidden input or meta tag attribute after `marker`.
    fn value_after(&self, marker: &str) -> String {
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} not in page:\n{}", self.body))
            + marker.len();
        self.body[start..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: server.url(""),
            session: None,
            csrf: String::new(),
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        extra_cookie: Option<String>,
        body: Option<(&str, String)>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        let mut cookies = Vec::new();
        if let Some(s) = &self.session {
            cookies.push(format!("th_session={s}"));
        }
        if let Some(c) = extra_cookie {
            cookies.push(c);
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let res = req.send().await.expect("request");
        Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.expect("body"),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        self.request(reqwest::Method::GET, path, None, None, &[])
            .await
    }

    /// A pre-session form (sign-in, setup): fetch it for its token and
    /// cookie, then post it.
    async fn post_pre_session_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let cookie = page.set_cookie("th_form").expect("form cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let token = page.value_after(r#"name="form_token" value=""#);
        let mut all = fields.to_vec();
        all.push(("form_token", &token));
        self.request(
            reqwest::Method::POST,
            path,
            Some(format!("th_form={}", cookie_value(&cookie))),
            Some(("application/x-www-form-urlencoded", form(&all))),
            &[],
        )
        .await
    }

    /// Takes the session cookie of a successful sign-in and the CSRF
    /// token from the next page.
    async fn adopt(&mut self, signed_in: &Page) {
        let cookie = signed_in.set_cookie("th_session").expect("session cookie");
        self.session = Some(cookie_value(&cookie));
        let page = self.get("/boards").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        self.csrf = page.value_after(r#"<meta name="csrf-token" content=""#);
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let page = self
            .post_pre_session_form(
                "/login",
                &[
                    ("username", username),
                    ("password", password),
                    ("next", "/boards"),
                ],
            )
            .await;
        if page.status == StatusCode::SEE_OTHER {
            self.adopt(&page).await;
        }
        page
    }

    /// A JSON API call authenticated by the session cookie.
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (StatusCode, Value) {
        let mut headers = vec![];
        if csrf {
            headers.push(("x-csrf-token", self.csrf.as_str()));
        }
        let page = self
            .request(
                method,
                path,
                None,
                body.map(|b| ("application/json", b.to_string())),
                &headers,
            )
            .await;
        (
            page.status,
            serde_json::from_str(&page.body).unwrap_or(Value::Null),
        )
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.request(
            reqwest::Method::POST,
            path,
            None,
            Some(("application/x-www-form-urlencoded", form(fields))),
            &[],
        )
        .await
    }
}

/// Sets up the first admin (`ada`) and returns her signed-in browser.
pub(crate) async fn first_admin(server: &TestServer) -> Browser {
    let mut browser = Browser::new(server);
    let page = browser
        .post_pre_session_form(
            "/setup",
            &[
                ("admin_token", &server.admin),
                ("username", "ada"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/boards");
    browser.adopt(&page).await;
    browser
}

#[tokio::test]
async fn setup_creates_the_first_admin_once_and_signs_her_in() {
    let server = TestServer::start().await;
    let fresh = Browser::new(&server);
    assert_eq!(fresh.get("/").await.location(), "/setup");
    assert_eq!(fresh.get("/login").await.location(), "/setup");

    let wrong = fresh
        .post_pre_session_form(
            "/setup",
            &[
                ("admin_token", "th_notarealtokennotarealtokennotarealtoken"),
                ("username", "ada"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not a working admin token"));

    let browser = first_admin(&server).await;
    let (status, me) = browser
        .api(reqwest::Method::GET, "/api/me", None, false)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["worker"]["name"], "ada", "{me}");
    assert_eq!(me["worker"]["kind"], "human", "{me}");
    assert!(me.to_string().contains("\"admin\""), "{me}");

    // Setup is closed for good once a user exists.
    assert_eq!(fresh.get("/setup").await.location(), "/login");
    let again = fresh
        .request(
            reqwest::Method::POST,
            "/setup",
            None,
            Some((
                "application/x-www-form-urlencoded",
                form(&[("admin_token", &server.admin)]),
            )),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_sets_a_hardened_cookie_and_a_wrong_password_does_not() {
    let server = TestServer::start().await;
    first_admin(&server).await;
    let mut browser = Browser::new(&server);
    let wrong = browser.sign_in("ada", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.set_cookie("th_session").is_none());
    assert!(wrong.body.contains("Wrong username or password."));
    let unknown = browser.sign_in("nobody", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("Wrong username or password."));

    let ok = browser.sign_in("ADA", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let cookie = ok.set_cookie("th_session").expect("cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http base URL: {cookie}");
    // Only a hash of the session id is stored.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_all(&server.state.store.reader)
        .await
        .expect("sessions");
    let id = cookie_value(&cookie);
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 32 && h.as_slice() != id.as_bytes())
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_slow_the_guesser_but_never_lock_the_user_out() {
    let server = TestServer::start().await;
    first_admin(&server).await;
    let mut browser = Browser::new(&server);
    for _ in 0..5 {
        let page = browser.sign_in("ada", "not the password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    // Past the free attempts, the next try must wait (even a right one)…
    let held = browser.sign_in("ada", PASSWORD).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(held.body.contains("Too many failed sign-ins"));
    assert!(held.set_cookie("th_session").is_none());
    // …but only for a backoff delay (1 s now), not a fixed lockout.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ok = browser.sign_in("ada", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_an_https_base_url() {
    let server =
        TestServer::start_with(|c| c.base_url = Some("https://board.example.com".into())).await;
    let browser = Browser::new(&server);
    let page = browser
        .post_pre_session_form(
            "/setup",
            &[
                ("admin_token", &server.admin),
                ("username", "ada"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    let cookie = page.set_cookie("th_session").expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn mutations_without_the_csrf_token_are_refused_with_403() {
    let server = TestServer::start().await;
    let browser = first_admin(&server).await;
    let (status, body) = browser
        .api(
            reqwest::Method::POST,
            "/api/boards",
            Some(json!({"name": "Core", "key": "CORE"})),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = browser
        .api(
            reqwest::Method::POST,
            "/api/boards",
            Some(json!({"name": "Core", "key": "CORE"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A wrong token is as bad as none.
    let page = browser
        .request(
            reqwest::Method::POST,
            "/api/boards",
            None,
            Some((
                "application/json",
                json!({"name": "X", "key": "XX"}).to_string(),
            )),
            &[("x-csrf-token", "guess")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Reads need no token.
    let (status, _) = browser
        .api(reqwest::Method::GET, "/api/boards", None, false)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Form posts carry it as a hidden field.
    let users = browser
        .post_form(
            "/users",
            &[
                ("username", "bob"),
                ("password", PASSWORD),
                ("scope", "queue:write"),
            ],
        )
        .await;
    assert_eq!(users.status, StatusCode::FORBIDDEN);
    let logout = browser.post_form("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    let (status, _) = browser
        .api(reqwest::Method::GET, "/api/me", None, false)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refused sign-out changed nothing"
    );
}

#[tokio::test]
async fn admins_create_users_who_act_as_their_own_human_worker() {
    let server = TestServer::start().await;
    let admin = first_admin(&server).await;
    let board = server.board("CORE").await;
    let page = admin
        .post_form(
            "/users",
            &[
                ("csrf", &admin.csrf),
                ("username", "bob"),
                ("password", PASSWORD),
                ("scope", "queue:write"),
                ("board_id", &board.to_string()),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    assert!(page.body.contains("User bob created."));
    let short = admin
        .post_form(
            "/users",
            &[
                ("csrf", &admin.csrf),
                ("username", "eve"),
                ("password", "short"),
                ("scope", "admin"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut bob = Browser::new(&server);
    assert_eq!(
        bob.sign_in("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let (_, me) = bob.api(reqwest::Method::GET, "/api/me", None, false).await;
    assert_eq!(me["worker"]["name"], "bob", "{me}");
    assert_eq!(me["worker"]["kind"], "human", "{me}");
    // Confined to his board and not an admin.
    assert_eq!(bob.get("/users").await.status, StatusCode::FORBIDDEN);
    let item = server.item(board, "shared work").await;
    let (status, claimed) = bob
        .api(
            reqwest::Method::POST,
            &format!("/api/items/{item}/claim"),
            Some(json!({})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["claim"]["worker"]["name"], "bob", "{claimed}");
    let (status, _) = bob
        .api(
            reqwest::Method::POST,
            "/api/boards",
            Some(json!({"name": "Other", "key": "OTH"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Issue 14: admins disable, re-enable, reset and delete users. Each ends
/// the user's sessions; deleting releases their claims (a forced release
/// in the history, which still names them); nobody acts on themselves.
#[tokio::test]
async fn admins_disable_reset_and_delete_users_and_their_claims_are_released() {
    let server = TestServer::start().await;
    let admin = first_admin(&server).await;
    let board = server.board("CORE").await;
    let created = admin
        .post_form(
            "/users",
            &[
                ("csrf", &admin.csrf),
                ("username", "bob"),
                ("password", PASSWORD),
                ("scope", "queue:write"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let users: Vec<(i64, String)> = sqlx::query_as("SELECT id, username FROM users")
        .fetch_all(&server.state.store.reader)
        .await
        .expect("users");
    let id_of = |name: &str| {
        users
            .iter()
            .find(|u| u.1 == name)
            .map(|u| u.0)
            .expect("user")
    };
    let (bob_id, ada_id) = (id_of("bob"), id_of("ada"));
    let action = |id: i64, what: &str| format!("/users/{id}/{what}");

    let mut bob = Browser::new(&server);
    assert_eq!(
        bob.sign_in("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let item = server.item(board, "bob's work").await;
    let (status, _) = bob
        .api(
            reqwest::Method::POST,
            &format!("/api/items/{item}/claim"),
            Some(json!({})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Without the CSRF token nothing happens; on yourself it is refused.
    let forged = admin
        .post_form(&action(bob_id, "disable"), &[("username", "bob")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let own = admin
        .post_form(
            &action(ada_id, "disable"),
            &[("csrf", &admin.csrf), ("username", "ada")],
        )
        .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    assert!(
        own.body
            .contains("cannot disable, delete or reset yourself")
    );

    let disabled = admin
        .post_form(
            &action(bob_id, "disable"),
            &[("csrf", &admin.csrf), ("username", "bob")],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert!(disabled.body.contains("bob is disabled and signed out."));
    assert!(disabled.body.contains(">disabled</span>"));
    assert_eq!(
        bob.get("/boards").await.status,
        StatusCode::SEE_OTHER,
        "session ended"
    );
    assert_eq!(
        Browser::new(&server).sign_in("bob", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    admin
        .post_form(
            &action(bob_id, "enable"),
            &[("csrf", &admin.csrf), ("username", "bob")],
        )
        .await;
    assert_eq!(
        bob.sign_in("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );

    let short = admin
        .post_form(
            &action(bob_id, "password"),
            &[
                ("csrf", &admin.csrf),
                ("username", "bob"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reset = admin
        .post_form(
            &action(bob_id, "password"),
            &[
                ("csrf", &admin.csrf),
                ("username", "bob"),
                ("password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    assert_eq!(
        bob.get("/boards").await.status,
        StatusCode::SEE_OTHER,
        "signed out everywhere"
    );
    assert_eq!(
        Browser::new(&server).sign_in("bob", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bob.sign_in("bob", "a brand new passphrase").await.status,
        StatusCode::SEE_OTHER
    );

    let deleted = admin
        .post_form(
            &action(bob_id, "delete"),
            &[("csrf", &admin.csrf), ("username", "bob")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(
        deleted
            .body
            .contains("bob is deleted; 1 claim(s) released."),
        "{}",
        deleted.body
    );
    assert_eq!(bob.get("/boards").await.status, StatusCode::SEE_OTHER);
    let after = server.item_json(item).await;
    assert!(after["claim"].is_null(), "{after}");
    let history = server
        .get(&server.admin, &format!("/api/items/{item}/events"))
        .await
        .expect(200);
    let events = history["events"].as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "item.claimed" && e["actor"]["name"] == "bob"),
        "{history}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "item.released" && e["data"]["reason"] == "user deleted"),
        "{history}"
    );
    let gone = admin
        .post_form(
            &action(bob_id, "delete"),
            &[("csrf", &admin.csrf), ("username", "bob")],
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// Issue 14: the webhooks list shows each endpoint's health: the last
/// success of a working one, the failure (since when, last error) of a
/// failing one.
#[tokio::test]
async fn the_webhooks_page_carries_each_endpoints_health() {
    use crate::receiver::Receiver;
    let server = TestServer::start_with(|c| {
        c.allow_private_webhooks = true;
        c.webhook_retry_scale = 0.4;
    })
    .await;
    let admin = first_admin(&server).await;
    let board = server.board("HOOK").await;
    let good = Receiver::start(vec![]).await;
    let failing = Receiver::start(vec![(500, None); 20]).await;
    let mut ids = Vec::new();
    for url in [&good.url, &failing.url] {
        let created = server
            .post(
                &server.admin,
                &format!("/api/boards/{board}/webhooks"),
                json!({"url": url, "events": ["item.created"]}),
            )
            .await
            .expect(201);
        ids.push(created["id"].as_i64().expect("id"));
    }
    server.item(board, "wake everyone").await;
    good.wait_for(1, Duration::from_secs(5)).await;
    failing.wait_for(1, Duration::from_secs(5)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let health = loop {
        let page = admin.get(&format!("/boards/{board}/webhooks")).await;
        assert_eq!(page.status, StatusCode::OK);
        let raw = page
            .value_after(r#"data-health=""#)
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&#x27;", "'");
        let health: Value = serde_json::from_str(&raw).expect("health json");
        let done = health[ids[0].to_string()]["last_success_ms"].is_i64()
            && health[ids[1].to_string()]["last_error"].is_string();
        if done || std::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        health[ids[0].to_string()]["last_success_ms"].is_i64(),
        "{health}"
    );
    assert!(
        health[ids[0].to_string()]["last_error"].is_null(),
        "{health}"
    );
    assert!(
        health[ids[1].to_string()]["last_success_ms"].is_null(),
        "{health}"
    );
    assert!(
        health[ids[1].to_string()]["last_error"].is_string(),
        "{health}"
    );
    let failing_hook = server
        .get(&server.admin, &format!("/api/webhooks/{}", ids[1]))
        .await
        .expect(200);
    assert!(failing_hook["failing_since"].is_string(), "{failing_hook}");
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let server = TestServer::start().await;
    let browser = first_admin(&server).await;
    let page = browser
        .post_form("/logout", &[("csrf", &browser.csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login");
    let cleared = page.set_cookie("th_session").expect("cleared cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _) = browser
        .api(reqwest::Method::GET, "/api/me", None, false)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let board_page = browser.get("/boards").await;
    assert_eq!(board_page.status, StatusCode::SEE_OTHER);
    assert!(board_page.location().starts_with("/login?next=/boards"));
}

#[tokio::test]
async fn sessions_expire_when_idle_and_after_their_absolute_lifetime() {
    let server = TestServer::start().await;
    let browser = first_admin(&server).await;
    let pool = &server.state.store.writer;
    let now = store::now_ms();
    sqlx::query("UPDATE sessions SET last_seen_at = ?")
        .bind(now - 13 * 3600 * 1000)
        .execute(pool)
        .await
        .expect("age");
    let (status, _) = browser
        .api(reqwest::Method::GET, "/api/me", None, false)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "12 h idle ends a session");

    let browser = {
        let mut b = Browser::new(&server);
        assert_eq!(
            b.sign_in("ada", PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
        b
    };
    sqlx::query("UPDATE sessions SET expires_at = ?")
        .bind(now - 1)
        .execute(pool)
        .await
        .expect("expire");
    let (status, _) = browser
        .api(reqwest::Method::GET, "/api/me", None, false)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "7 days in all end a session"
    );
}

#[tokio::test]
async fn every_page_renders_for_a_signed_in_admin_and_escapes_titles() {
    let server = TestServer::start().await;
    let browser = first_admin(&server).await;
    let board = server.board("CORE").await;
    let item = server.item(board, "<script>alert(1)</script>").await;
    let agent = server.agent("bot-1").await;
    server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    server
        .post(
            &agent,
            &format!("/api/items/{item}/comments"),
            json!({"body": "halfway", "kind": "checkpoint"}),
        )
        .await
        .expect(201);

    for path in [
        "/boards".to_owned(),
        format!("/boards/{board}"),
        format!("/boards/{board}/settings"),
        format!("/boards/{board}/webhooks"),
        format!("/boards/{board}/health"),
        format!("/boards/{board}/flow"),
        format!("/items/{item}"),
        "/tokens".to_owned(),
        "/users".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert(1)"),
            "{path} renders a live script"
        );
        let csp = page
            .headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    }
    let board_page = browser.get(&format!("/boards/{board}")).await;
    assert!(
        board_page
            .body
            .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
    );
    assert!(
        board_page
            .body
            .contains(r#"<span class="who who-agent">agent</span> bot-1"#)
    );
    // The flow page draws its charts and names the agent holding a claim.
    let flow = browser.get(&format!("/boards/{board}/flow")).await;
    assert_eq!(flow.body.matches("<svg class=\"chart\"").count(), 8);
    assert!(flow.body.contains("bot-1 (agent)"), "{}", flow.body);
    let bad = browser
        .get(&format!(
            "/boards/{board}/flow?from=2026-02-01&to=2026-01-01"
        ))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("must not be after to"));
    // Markdown (issue 14): rendered, but no script link, raw HTML or image
    // survives, in the body or in a comment.
    let hostile = "**bold** [ok](https://example.com) [bad](javascript:alert(1)) \
                   [worse](JaVaScRiPt:alert(2)) <img src=x onerror=alert(3)> \
                   ![pixel](https://tracker.example/p.gif) <script>alert(4)</script>";
    let marked = server
        .item_with(board, json!({"title": "markdown", "body": hostile}))
        .await;
    server
        .post(
            &agent,
            &format!("/api/items/{marked}/comments"),
            json!({"body": hostile}),
        )
        .await
        .expect(201);
    let page = browser.get(&format!("/items/{marked}")).await;
    let lower = page.body.to_lowercase();
    assert_eq!(page.body.matches("<strong>bold</strong>").count(), 2);
    assert_eq!(
        page.body
            .matches(r#"<a href="https://example.com" rel="nofollow noopener noreferrer">ok</a>"#)
            .count(),
        2
    );
    assert!(
        !lower.contains("href=\"javascript"),
        "a script link survived"
    );
    assert!(!lower.contains("<img"), "an image survived");
    assert!(!lower.contains("<script>alert"), "raw script survived");
    assert!(page.body.contains("&lt;script&gt;alert(4)"));
    let item_page = browser.get(&format!("/items/{item}")).await;
    assert!(item_page.body.contains("c-checkpoint"));
    assert!(item_page.body.contains("claimed it"));

    let card = browser.get(&format!("/boards/{board}/cards/{item}")).await;
    assert_eq!(card.status, StatusCode::OK);
    assert!(card.body.starts_with(&format!(
        "<li class=\"card kind-task held\" id=\"item-{item}\""
    )));
    let changes = browser
        .get(&format!("/boards/{board}/changes?after=0"))
        .await;
    let changes: Value = serde_json::from_str(&changes.body).expect("json");
    assert!(
        changes["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["type"] == "item.claimed"))
    );

    let missing = browser.get("/boards/999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Not found"));
}

#[tokio::test]
async fn static_assets_are_cached_for_good_and_pages_need_a_session() {
    let server = TestServer::start().await;
    let browser = Browser::new(&server);
    for path in ["/static/app.js", "/static/app.css"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK);
        let cache = page
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(cache.contains("immutable"), "{cache}");
    }
    first_admin(&server).await;
    let anonymous = browser.get("/boards/1").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location(), "/login?next=/boards/1");
}

/// The browser tests take turns: two Chromiums at once on 2 cores made
/// drag-and-drop timing flaky.
pub(crate) static BROWSER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn e2e_paths() -> (PathBuf, PathBuf, PathBuf) {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let node_dir = std::env::var_os("TASKHARBOR_E2E_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("taskharbor").join("node")
        });
    let artifacts = manifest.join("..").join("target").join("e2e-artifacts");
    (
        manifest.join("tests/e2e/dashboard.mjs"),
        node_dir,
        artifacts,
    )
}

/// The whole dashboard in a real headless browser: sign in, create an
/// item, drag it to In Progress, see an agent's API claim appear live, get
/// the WIP message on an over-limit drop, revoke a token.
#[tokio::test]
async fn the_dashboard_works_end_to_end_in_headless_chromium() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let _turn = BROWSER_TURN.lock().await;
    let (script, node_dir, artifacts) = e2e_paths();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run .ci/web-prereqs.sh (Debian chromium + chromium-driver)"
    );
    assert!(
        node_dir
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is missing in {}: run .ci/web-prereqs.sh",
        node_dir.display()
    );

    let server = TestServer::start().await;
    let board = server.board("E2E").await;
    let in_progress = server.lane_id(board, "in_progress").await;
    server
        .patch(
            &server.admin,
            &format!("/api/lanes/{in_progress}"),
            json!({"wip_limit": 1}),
        )
        .await
        .expect(200);
    let admin = first_admin(&server).await;
    let carol = admin
        .post_form(
            "/users",
            &[
                ("csrf", &admin.csrf),
                ("username", "carol"),
                ("password", PASSWORD),
                ("scope", "queue:write"),
            ],
        )
        .await;
    assert_eq!(carol.status, StatusCode::CREATED);
    let for_agent = server.item(board, "Agent will claim this").await;
    server.item(board, "Overflow candidate").await;
    // Another board's real key, which the item page must refuse by name.
    let plat = server.board("PLAT").await;
    server.item(plat, "Lives on another board").await;
    let agent = server.agent("bot-7").await;
    let doomed = server
        .token("doomed-bot", "agent", &["queue:write"], None)
        .await;

    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(server.url(""))
        .arg(board.to_string())
        .arg(&artifacts)
        .env("TASKHARBOR_E2E_NODE_DIR", &node_dir)
        .env("E2E_USER", "ada")
        .env("E2E_PASSWORD", PASSWORD)
        .env("E2E_OTHER_KEY", "PLAT-1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is missing: install Node.js 18+ (see .ci/web-prereqs.sh)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut result: Option<Value> = None;
    let run = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            println!("e2e: {line}");
            if line == "CLAIM_NOW" {
                // An agent claims through the REST API while the page is open.
                server
                    .post(&agent, &format!("/api/items/{for_agent}/claim"), json!({}))
                    .await
                    .expect(200);
                stdin.write_all(b"claimed\n").await.expect("stdin");
                stdin.flush().await.expect("flush");
            } else if let Some(json) = line.strip_prefix("RESULT ") {
                result = serde_json::from_str(json).ok();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser scenario took over 3 minutes");
    let status = child.wait().await.expect("node exit");
    let result = result.unwrap_or(Value::Null);
    assert!(
        status.success() && result["ok"] == true,
        "browser scenario failed ({status}): {result}; screenshots in {}",
        artifacts.display()
    );
    // The revoke clicked in the browser took effect on the very next request.
    server
        .get(&doomed, "/api/me")
        .await
        .expect_error(401, "unauthorized");
    let item = server.item_json(for_agent).await;
    assert_eq!(item["claim"]["worker"]["name"], "bot-7");
}

/// Runs `tests/e2e/<script>` with node against `server`, signed in as ada,
/// and returns its `RESULT` line; panics (naming the prerequisites script)
/// when Chromium or the node packages are missing.
async fn run_node_script(
    server: &TestServer,
    script: &str,
    artifacts: &std::path::Path,
    env: &[(&str, String)],
) -> (bool, Value) {
    use tokio::io::AsyncBufReadExt;
    let (_, node_dir, _) = e2e_paths();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run .ci/web-prereqs.sh"
    );
    for package in ["playwright-core", "axe-core"] {
        assert!(
            node_dir
                .join(format!("node_modules/{package}/package.json"))
                .exists(),
            "{package} is missing in {}: run .ci/web-prereqs.sh",
            node_dir.display()
        );
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new("node");
    command
        .arg(manifest.join("tests/e2e").join(script))
        .arg(server.url(""))
        .arg(artifacts)
        .env("TASKHARBOR_E2E_NODE_DIR", &node_dir)
        .env("E2E_USER", "ada")
        .env("E2E_PASSWORD", PASSWORD)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .expect("node is missing: install Node.js 18+ (see .ci/web-prereqs.sh)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut result = Value::Null;
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            println!("e2e: {line}");
            if let Some(json) = line.strip_prefix("RESULT ") {
                result = serde_json::from_str(json).unwrap_or(Value::Null);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(240), read)
        .await
        .expect("the browser run took over 4 minutes");
    let status = child.wait().await.expect("node exit");
    (status.success(), result)
}

/// Issue 14: every page at 1400 and 390 px in headless Chromium, with a
/// seeded month of history so the flow charts have data. Each page must
/// answer 200, not scroll sideways, carry a favicon, and pass axe-core
/// with no serious or critical violation. Screenshots are kept in
/// `target/e2e-artifacts/pages/<page>-<width>.png`.
#[tokio::test]
async fn every_page_fits_desk_and_phone_widths_and_passes_axe_in_headless_chromium() {
    let _turn = BROWSER_TURN.lock().await;
    let (server, board) = crate::stats::seeded().await;
    let admin = first_admin(&server).await;
    for name in ["bob", "carol"] {
        let created = admin
            .post_form(
                "/users",
                &[
                    ("csrf", &admin.csrf),
                    ("username", name),
                    ("password", PASSWORD),
                    ("scope", "queue:write"),
                ],
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let agent = server.agent("bot-7").await;
    let held = server
        .item_with(
            board,
            json!({"title": "Parse the **release notes** for PLAT links", "agent_ready": true,
                   "labels": ["api", "docs"], "priority": 1,
                   "body": "Steps:\n\n1. read `notes.md`\n2. [link](https://example.com)\n\n<b>raw</b>"}),
        )
        .await;
    server
        .post(
            &agent,
            &format!("/api/items/{held}/claim"),
            json!({"start": true}),
        )
        .await
        .expect(200);
    server
        .post(
            &agent,
            &format!("/api/items/{held}/comments"),
            json!({"body": "Checkpoint: **half** done; next `step 2`", "kind": "checkpoint"}),
        )
        .await
        .expect(201);
    server
        .item_with(
            board,
            json!({"title": "Login button does nothing on Safari", "kind": "defect", "priority": 0}),
        )
        .await;
    server
        .token("ci-runner", "agent", &["queue:write"], Some(board))
        .await;
    // A webhook row, so the webhooks table is measured with content at 390
    // and 360 px (a public address: creation checks it, nothing is sent).
    server
        .post(
            &server.admin,
            &format!("/api/boards/{board}/webhooks"),
            json!({"url": "https://93.184.216.34/hooks/a-rather-long-path/for-taskharbor-events"}),
        )
        .await
        .expect(201);
    let pages = json!([
        ["boards", "/boards"],
        ["board", format!("/boards/{board}")],
        [
            "flow",
            format!("/boards/{board}/flow?from=2026-01-01&to=2026-01-30")
        ],
        ["health", format!("/boards/{board}/health")],
        ["settings", format!("/boards/{board}/settings")],
        ["webhooks", format!("/boards/{board}/webhooks")],
        ["item", format!("/items/{held}")],
        ["tokens", "/tokens"],
        ["users", "/users"],
    ]);
    let artifacts = e2e_paths().2.join("pages");
    let (ok, result) = run_node_script(
        &server,
        "pages.mjs",
        &artifacts,
        &[("E2E_PAGES", pages.to_string())],
    )
    .await;
    let results = result["results"].as_array().cloned().unwrap_or_default();
    let bad: Vec<&Value> = results
        .iter()
        .filter(|r| {
            r["status"] != 200
                || r["overflow"] != 0
                || r["violations"].as_array().is_none_or(|v| !v.is_empty())
                || r["favicon"].is_null()
        })
        .collect();
    let narrow: Vec<&Value> = result["narrow"]
        .as_array()
        .map(|n| n.iter().filter(|r| r["overflow"] != 0).collect())
        .unwrap_or_default();
    assert!(
        ok && bad.is_empty()
            && narrow.is_empty()
            && results.len() == 18
            && result["narrow"].as_array().map(Vec::len) == Some(9)
            && result["faviconServed"] == true,
        "pages failed: {bad:#?}\nwider than 360 px: {narrow:#?}\nfull result: {result}\nscreenshots in {}",
        artifacts.display()
    );
    for name in [
        "board-1400.png",
        "board-390.png",
        "flow-1400.png",
        "flow-390.png",
    ] {
        assert!(artifacts.join(name).exists(), "{name} was not saved");
    }
}
