//! Comments both ways beyond creation: the reconciler picks up comments
//! whose webhook was lost (GitHub's repository-wide listing, GitLab's
//! notes of updated issues), and remote edits and deletions are followed
//! (imported comments: recorded as notes, the board keeps the original;
//! our mirrors: the board's text wins and is put back).

use super::gitlab::hook;
use super::standin::{Remote, TOKEN};
use super::*;
use crate::support::TestServer;
use reqwest::Method;

async fn comments(s: &TestServer, item: i64) -> Vec<Value> {
    s.get(&s.admin, &format!("/api/items/{item}/comments"))
        .await
        .expect(200)["comments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn count_with(list: &[Value], needle: &str) -> usize {
    list.iter()
        .filter(|c| c["body"].as_str().is_some_and(|b| b.contains(needle)))
        .count()
}

/// A linked board with one synced item; returns (board, item, number, secret).
async fn synced_item(s: &TestServer, remote: &Remote, gitlab: bool) -> (i64, i64, i64, String) {
    let board = s.board(if gitlab { "GLC" } else { "GHC" }).await;
    let link = if gitlab {
        s.send(
            Some(&s.admin),
            Method::PUT,
            &format!("/api/boards/{board}/sync"),
            Some(json!({"provider": "gitlab", "repo": REPO, "api_url": remote.gitlab_url(), "token": TOKEN, "import": "none"})),
            &[],
        )
        .await
        .expect(200)
    } else {
        link_github(s, board, remote, "none").await
    };
    let secret = link["webhook_secret"].as_str().expect("secret").to_owned();
    let item = s.item_with(board, json!({"title": "Talk"})).await;
    eventually(10, "synced", || async {
        s.item_json(item).await["sync"]["state"] == "synced"
    })
    .await;
    let number = remote_number(s, item).await.expect("number");
    (board, item, number, secret)
}

#[tokio::test]
async fn a_github_comment_whose_webhook_was_lost_arrives_by_polling_exactly_once() {
    let remote = Remote::start(REPO).await;
    let s = server(150, |_| {}).await;
    let (_, item, number, _) = synced_item(&s, &remote, false).await;
    s.post(
        &s.admin,
        &format!("/api/items/{item}/comments"),
        json!({"body": "Said on the board"}),
    )
    .await
    .expect(201);
    eventually(10, "board comment mirrored", || async {
        remote.lock().comments.len() == 1
    })
    .await;
    // No webhook is delivered for this one.
    remote
        .lock()
        .add_comment(number, "Said on GitHub, hook lost", "octocat");
    eventually(10, "polled comment on the board", || async {
        count_with(&comments(&s, item).await, "hook lost") == 1
    })
    .await;
    // Several more polls: still once, and nothing echoes either way.
    let polls = remote.lock().count("poll_comments");
    eventually(10, "more polls", || async {
        remote.lock().count("poll_comments") >= polls + 3
    })
    .await;
    let list = comments(&s, item).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(count_with(&list, "hook lost"), 1);
    assert_eq!(count_with(&list, "Said on the board"), 1);
    let imported = list
        .iter()
        .find(|c| c["body"] == "Said on GitHub, hook lost")
        .expect("imported");
    assert_eq!(imported["author"]["name"], "github:octocat");
    assert_eq!(
        remote.lock().comments.len(),
        2,
        "the polled comment was not mirrored back"
    );
    assert_eq!(remote.lock().count("create_comment"), 1);

    // The reconciler also sees edits: a comment imported before text
    // fingerprints were kept takes the board's copy as its baseline (no
    // note for an unchanged text), and a real edit is noted once.
    let cid = remote.lock().comments[1].id;
    sqlx::query(
        "UPDATE sync_comments SET remote_hash = NULL, remote_updated_at = NULL WHERE remote_id = ?",
    )
    .bind(cid)
    .execute(&s.state.store.writer)
    .await
    .expect("forget the fingerprint");
    remote.lock().edit_comment(cid, "Said on GitHub, hook lost");
    let polls = remote.lock().count("poll_comments");
    eventually(10, "polled again", || async {
        remote.lock().count("poll_comments") >= polls + 2
    })
    .await;
    assert_eq!(
        comments(&s, item).await.len(),
        2,
        "no note for the same text"
    );
    remote
        .lock()
        .edit_comment(cid, "Said on GitHub, then amended");
    eventually(10, "edit noted", || async {
        count_with(&comments(&s, item).await, "then amended") == 1
    })
    .await;
    // Comments on pull requests are passed by without a look-up.
    let pr = remote
        .lock()
        .add_issue("A pull request", "", &[], "dev", true);
    remote.lock().add_comment(pr, "LGTM", "reviewer");
    let polls = remote.lock().count("poll_comments");
    eventually(10, "polled again", || async {
        remote.lock().count("poll_comments") >= polls + 2
    })
    .await;
    assert_eq!(count_with(&comments(&s, item).await, "LGTM"), 0);
    assert_eq!(
        remote.lock().count("get_issue"),
        0,
        "no look-up for a PR comment"
    );
    assert_eq!(comments(&s, item).await.len(), 3);
}

#[tokio::test]
async fn github_comment_edits_and_deletions_are_followed_and_the_board_keeps_what_it_had() {
    let remote = Remote::start(REPO).await;
    let s = server(0, |_| {}).await;
    let (board, item, number, secret) = synced_item(&s, &remote, false).await;

    // Theirs: created, edited (delivered twice), deleted (delivered twice).
    let cid = remote.lock().add_comment(number, "First take", "octocat");
    let send = |action: &'static str, body: &'static str, id: &'static str| {
        let payload = comment_event(action, number, cid, body, "octocat");
        let s = &s;
        let secret = secret.clone();
        async move { deliver(s, board, "issue_comment", &payload, &secret, id).await }
    };
    assert_eq!(send("created", "First take", "d-1").await, 202);
    eventually(10, "imported", || async {
        count_with(&comments(&s, item).await, "First take") == 1
    })
    .await;
    remote.lock().edit_comment(cid, "Second take");
    assert_eq!(send("edited", "Second take", "d-2").await, 202);
    assert_eq!(send("edited", "Second take", "d-2-again").await, 202);
    eventually(10, "edit recorded", || async {
        count_with(&comments(&s, item).await, "Second take") == 1
    })
    .await;
    remote.lock().delete_comment(cid);
    assert_eq!(send("deleted", "Second take", "d-3").await, 202);
    assert_eq!(send("deleted", "Second take", "d-3-again").await, 202);
    eventually(10, "deletion recorded", || async {
        count_with(&comments(&s, item).await, "was deleted there") == 1
    })
    .await;
    let list = comments(&s, item).await;
    assert_eq!(list.len(), 3, "original, edit note, delete note: {list:?}");
    assert_eq!(list[0]["body"], "First take", "the original is kept");
    assert!(
        list.iter()
            .skip(1)
            .all(|c| c["author"]["name"] == "github:octocat")
    );
    let history = s
        .get(&s.admin, &format!("/api/items/{item}/events"))
        .await
        .expect(200)
        .to_string();
    assert!(history.contains("\"via\":\"github\""), "{history}");

    // Ours: the board's text wins over a remote edit, and a deleted mirror comes back.
    s.post(
        &s.admin,
        &format!("/api/items/{item}/comments"),
        json!({"body": "Board's word"}),
    )
    .await
    .expect(201);
    let ours = wait_for(10, "mirrored", || {
        remote
            .lock()
            .comments
            .iter()
            .find(|c| c.body.starts_with("Board's word"))
            .map(|c| c.id)
    })
    .await;
    let mirrored_text = remote.lock().comment(ours).expect("ours").body;
    remote.lock().edit_comment(ours, "Vandalised");
    let edited = comment_event("edited", number, ours, "Vandalised", "mallory");
    assert_eq!(
        deliver(&s, board, "issue_comment", &edited, &secret, "d-4").await,
        202
    );
    eventually(10, "board text restored", || async {
        remote.lock().comment(ours).map(|c| c.body) == Some(mirrored_text.clone())
    })
    .await;
    assert_eq!(remote.lock().count("update_comment"), 1);
    remote.lock().delete_comment(ours);
    let deleted = comment_event("deleted", number, ours, "Vandalised", "mallory");
    assert_eq!(
        deliver(&s, board, "issue_comment", &deleted, &secret, "d-5").await,
        202
    );
    eventually(10, "mirror posted again", || async {
        remote
            .lock()
            .comments
            .iter()
            .any(|c| c.id != ours && c.body == mirrored_text.replace("\r\n", "\n"))
    })
    .await;
    let list = comments(&s, item).await;
    assert_eq!(list.len(), 4, "nothing added for our own comment: {list:?}");
    let remote_bodies: Vec<String> = remote
        .lock()
        .comments
        .iter()
        .map(|c| c.body.clone())
        .collect();
    assert_eq!(
        remote_bodies.len(),
        1,
        "notes never mirror out: {remote_bodies:?}"
    );
    let metrics = s.http.get(s.url("/metrics")).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    for outcome in [
        "comment",
        "edited",
        "deleted",
        "duplicate",
        "pushed_back",
        "restored",
    ] {
        assert!(
            metrics.contains(&format!(
                "taskharbor_sync_inbound_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome} missing from /metrics"
        );
    }
}

#[tokio::test]
async fn gitlab_notes_arrive_by_polling_and_their_updates_are_followed_both_ways() {
    let remote = Remote::start(REPO).await;
    let s = server(150, |_| {}).await;
    let (board, item, iid, secret) = synced_item(&s, &remote, true).await;
    // A note whose hook was lost: the issue poll sees the issue updated and reads its notes.
    let nid = remote.lock().add_comment(iid, "Lost note", "gl-user");
    eventually(10, "polled note", || async {
        count_with(&comments(&s, item).await, "Lost note") == 1
    })
    .await;
    // Updated on GitLab: a Note Hook for the same note id.
    remote.lock().edit_comment(nid, "Lost note, amended");
    let note = |id: i64, text: &str, user: &str| {
        json!({"object_kind": "note", "user": {"username": user},
            "object_attributes": {"id": id, "note": text, "noteable_type": "Issue", "system": false,
                "updated_at": "2026-01-01 10:00:00 UTC"},
            "issue": {"iid": iid}})
    };
    assert_eq!(
        hook(
            &s,
            board,
            "Note Hook",
            &secret,
            "n-1",
            note(nid, "Lost note, amended", "gl-user")
        )
        .await,
        202
    );
    eventually(10, "update recorded", || async {
        count_with(&comments(&s, item).await, "amended") == 1
    })
    .await;
    // Ours, edited on GitLab: put back.
    s.post(
        &s.admin,
        &format!("/api/items/{item}/comments"),
        json!({"body": "From the board"}),
    )
    .await
    .expect(201);
    let ours = wait_for(10, "mirrored", || {
        remote
            .lock()
            .comments
            .iter()
            .find(|c| c.body.starts_with("From the board"))
            .map(|c| c.id)
    })
    .await;
    let text = remote.lock().comment(ours).expect("ours").body;
    remote.lock().edit_comment(ours, "Changed on GitLab");
    assert_eq!(
        hook(
            &s,
            board,
            "Note Hook",
            &secret,
            "n-2",
            note(ours, "Changed on GitLab", "gl-user")
        )
        .await,
        202
    );
    eventually(10, "restored", || async {
        remote.lock().comment(ours).map(|c| c.body) == Some(text.clone())
    })
    .await;
    // The issue changes again, so the poll reads its notes once more:
    // nothing comes back twice, and the notes stay on the board.
    let reads = remote.lock().count("list_comments");
    remote.lock().edit(iid, |_| {});
    eventually(10, "more polls", || async {
        remote.lock().count("list_comments") > reads
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let list = comments(&s, item).await;
    assert_eq!(list.len(), 3, "note, edit note, board comment: {list:?}");
    assert_eq!(list[0]["body"], "Lost note", "the original is kept");
    assert_eq!(remote.lock().comments.len(), 2);
    // The poll may see the edit before the hook is worked; the hook's stale
    // copy then costs one more (idempotent) PUT, never a loop.
    let puts = remote.lock().count("update_comment");
    assert!((1..=2).contains(&puts), "{puts} PUTs");
    assert_eq!(remote.lock().comment(ours).map(|c| c.body), Some(text));
}
