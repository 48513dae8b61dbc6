//! GitLab sync against the stand-in (REST v4 shapes): link check, fields
//! out (labels, `state_event`), and inbound Issue/Note hooks with
//! `X-Gitlab-Token`.

use super::standin::{Remote, TOKEN};
use super::*;
use reqwest::Method;

pub(super) async fn hook(
    s: &crate::support::TestServer,
    board: i64,
    event: &str,
    token: &str,
    uuid: &str,
    body: Value,
) -> u16 {
    s.http
        .post(s.url(&format!("/hooks/gitlab/{board}")))
        .header("x-gitlab-event", event)
        .header("x-gitlab-token", token)
        .header("x-gitlab-event-uuid", uuid)
        .json(&body)
        .send()
        .await
        .expect("hook")
        .status()
        .as_u16()
}

#[tokio::test]
async fn gitlab_links_mirrors_out_and_accepts_hooks_with_its_token() {
    let remote = Remote::start("acme/platform/widgets").await;
    let s = server(0, |_| {}).await;
    let board = s.board("GLB").await;
    let put = |token: &str| json!({"provider": "gitlab", "repo": "acme/platform/widgets", "api_url": remote.gitlab_url(), "token": token, "import": "none"});
    let r = s
        .send(
            Some(&s.admin),
            Method::PUT,
            &format!("/api/boards/{board}/sync"),
            Some(put("glpat-wrong")),
            &[],
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert!(
        r.body["error"]["details"]["token"].is_string(),
        "{}",
        r.body
    );
    let link = s
        .send(
            Some(&s.admin),
            Method::PUT,
            &format!("/api/boards/{board}/sync"),
            Some(put(TOKEN)),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(
        link["webhook_url"],
        format!("https://board.example/hooks/gitlab/{board}")
    );
    let secret = link["webhook_secret"].as_str().expect("secret").to_owned();

    let item = s
        .item_with(
            board,
            json!({"title": "GL item", "labels": ["infra"], "kind": "defect"}),
        )
        .await;
    eventually(10, "issue created", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    let iid = remote_number(&s, item).await.expect("iid");
    assert_eq!(s.item_json(item).await["sync"]["provider"], "gitlab");
    assert_eq!(
        remote.lock().issues[&iid].labels,
        vec!["bug", "infra", "status:backlog"]
    );
    s.post(
        &s.admin,
        &format!("/api/items/{item}/move"),
        json!({"status": "done"}),
    )
    .await
    .expect(200);
    eventually(10, "closed via state_event", || async {
        remote.lock().issues[&iid].closed
    })
    .await;
    assert!(
        remote
            .lock()
            .mutations()
            .iter()
            .any(|m| m.body.contains("\"state_event\":\"close\""))
    );

    // Inbound: a wrong token changes nothing; the right one lands once.
    remote.lock().edit(iid, |i| {
        i.title = "Renamed in GitLab".into();
        i.closed = false;
    });
    let issue_hook = json!({"object_kind": "issue", "event_type": "issue", "user": {"username": "gl-user"},
        "object_attributes": {"iid": iid, "action": "update", "title": "Renamed in GitLab"}});
    assert_eq!(
        hook(&s, board, "Issue Hook", "nope", "u-1", issue_hook.clone()).await,
        401
    );
    assert_eq!(
        hook(&s, board, "Issue Hook", &secret, "u-1", issue_hook.clone()).await,
        202
    );
    assert_eq!(
        hook(&s, board, "Issue Hook", &secret, "u-1", issue_hook).await,
        200
    );
    eventually(10, "title and reopen applied", || async {
        let v = s.item_json(item).await;
        v["title"] == "Renamed in GitLab" && v["status"] == "backlog"
    })
    .await;
    let note_id = remote
        .lock()
        .add_comment(iid, "Note from GitLab", "gl-user");
    let note = json!({"object_kind": "note", "user": {"username": "gl-user"},
        "object_attributes": {"id": note_id, "note": "Note from GitLab", "noteable_type": "Issue", "system": false},
        "issue": {"iid": iid}});
    assert_eq!(
        hook(&s, board, "Note Hook", &secret, "u-2", note).await,
        202
    );
    eventually(10, "note imported", || async {
        let c = s
            .get(&s.admin, &format!("/api/items/{item}/comments"))
            .await
            .expect(200);
        c["comments"].as_array().is_some_and(|l| {
            l.iter()
                .any(|c| c["body"] == "Note from GitLab" && c["author"]["name"] == "gitlab:gl-user")
        })
    })
    .await;
    assert_eq!(remote.lock().count("create_issue"), 1);
}
