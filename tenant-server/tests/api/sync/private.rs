//! Private addresses are refused when a connection is made, not only when
//! a repository is linked: DNS can change after linking. The lookup is
//! driven by the test (no real DNS); the guard and both real clients
//! (octocrab's connector, reqwest) are the server's own.

use super::standin::{Remote, TOKEN};
use super::*;
use crate::support::TestServer;
use reqwest::Method;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use taskharbor::sync::net::Lookup;

/// A DNS the test controls.
struct Hosts(HashMap<String, IpAddr>);

impl Lookup for Hosts {
    fn lookup(
        &self,
        host: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
    {
        let found = self.0.get(host).copied();
        Box::pin(async move {
            found
                .map(|ip| vec![ip])
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
        })
    }
}

fn dns() -> Arc<Hosts> {
    let loopback: IpAddr = [127, 0, 0, 1].into();
    Arc::new(Hosts(HashMap::from([
        ("ghe.test".to_owned(), loopback),
        ("gitlab.test".to_owned(), loopback),
    ])))
}

fn port(remote: &Remote) -> u16 {
    remote
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("stand-in port")
}

async fn put_link(s: &TestServer, board: i64, body: Value) -> crate::support::Reply {
    s.send(
        Some(&s.admin),
        Method::PUT,
        &format!("/api/boards/{board}/sync"),
        Some(body),
        &[],
    )
    .await
}

#[tokio::test]
async fn a_repository_host_that_turns_private_after_linking_gets_a_clear_error_and_no_request() {
    let github = Remote::start(REPO).await;
    let gitlab = Remote::start(REPO).await;
    let gh_api = format!("http://ghe.test:{}", port(&github));
    let gl_api = format!("http://gitlab.test:{}/api/v4", port(&gitlab));
    // Linked while private targets were allowed, through the test's DNS.
    let s = server(0, |_| {}).await;
    s.state.sync.set_lookup(dns());
    let gh_board = s.board("PRG").await;
    let gl_board = s.board("PRL").await;
    put_link(&s, gh_board, json!({"provider": "github", "repo": REPO, "api_url": gh_api, "token": TOKEN, "import": "none"}))
        .await
        .expect(200);
    put_link(&s, gl_board, json!({"provider": "gitlab", "repo": REPO, "api_url": gl_api, "token": TOKEN, "import": "none"}))
        .await
        .expect(200);
    let first_gh = s.item_with(gh_board, json!({"title": "Before"})).await;
    let first_gl = s.item_with(gl_board, json!({"title": "Before"})).await;
    eventually(10, "both mirrored through the test's DNS", || async {
        s.item_json(first_gh).await["sync"]["state"] == "synced"
            && s.item_json(first_gl).await["sync"]["state"] == "synced"
    })
    .await;

    // The same names now resolve to a private address, and the server
    // runs with the default: private targets refused.
    let admin = s.admin.clone();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, Some(admin), |c| {
        c.allow_private_webhooks = false;
        c.sync_min_interval_ms = 0;
        c.sync_poll_interval_ms = 3_600_000;
        c.base_url = Some("https://board.example".into());
    })
    .await;
    s.state.sync.set_lookup(dns());
    let sent_gh = github.lock().requests.len();
    let sent_gl = gitlab.lock().requests.len();
    let second_gh = s.item_with(gh_board, json!({"title": "After"})).await;
    let second_gl = s.item_with(gl_board, json!({"title": "After"})).await;
    for (board, item, host) in [
        (gh_board, second_gh, "ghe.test"),
        (gl_board, second_gl, "gitlab.test"),
    ] {
        let want = format!("{host} resolves to a private, loopback or link-local address");
        eventually(15, "a clear sync error", || async {
            let link = s
                .get(&s.admin, &format!("/api/boards/{board}/sync"))
                .await
                .expect(200);
            let item = s.item_json(item).await;
            link["state"] == "error"
                && link["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(&want))
                && item["sync"]["state"] == "error"
                && item["sync"]["error"]
                    .as_str()
                    // Known as refused (nothing sent), not an unknown outcome.
                    .is_some_and(|e| e.starts_with(&want))
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        github.lock().requests.len(),
        sent_gh,
        "no request reached GitHub"
    );
    assert_eq!(
        gitlab.lock().requests.len(),
        sent_gl,
        "no request reached GitLab"
    );
    assert!(s.item_json(second_gh).await["sync"]["number"].is_null());

    // Linking anew is refused the same way, naming the field.
    let board = s.board("PRN").await;
    let r = put_link(&s, board, json!({"provider": "gitlab", "repo": "acme/other", "api_url": gl_api, "token": TOKEN, "import": "none"}))
        .await;
    r.expect_error(422, "validation_failed");
    let why = r.body["error"]["details"]["api_url"].as_str().unwrap_or("");
    assert!(
        why.contains("gitlab.test resolves to a private"),
        "{}",
        r.body
    );
    assert_eq!(gitlab.lock().requests.len(), sent_gl);
}
