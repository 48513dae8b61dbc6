//! The queue rules over HTTP: start and WIP, leases and fencing, review
//! gate, lock, dependencies, handoff, release.

use crate::support::TestServer;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn claim_with_start_moves_to_in_progress_and_the_wip_limit_refuses_more() {
    let server = TestServer::start().await;
    let board = server.board("WIP").await;
    let in_progress = server.lane_id(board, "in_progress").await;
    server
        .patch(
            &server.admin,
            &format!("/api/lanes/{in_progress}"),
            json!({"wip_limit": 1}),
        )
        .await
        .expect(200);
    let a = server.item(board, "a").await;
    let b = server.item(board, "b").await;
    let agent = server.agent("worker").await;
    let claimed = server
        .post(
            &agent,
            &format!("/api/items/{a}/claim"),
            json!({"start": true}),
        )
        .await
        .expect(200);
    assert_eq!(claimed["status"], "in_progress");
    assert_eq!(claimed["lane_id"], json!(in_progress));
    assert_eq!(
        claimed["version"],
        json!(2),
        "a lane change is a change of the item"
    );
    let refused = server
        .post(
            &agent,
            &format!("/api/items/{b}/claim"),
            json!({"start": true}),
        )
        .await;
    refused.expect_error(409, "wip_limit_reached");
    assert_eq!(
        refused.body["error"]["details"],
        json!({"lane_id": in_progress, "limit": 1})
    );
    // Nothing of the refused command stuck: b is neither claimed nor moved.
    let b_now = server.item_json(b).await;
    assert!(b_now["claim"].is_null());
    assert_eq!(b_now["status"], "ready");
    let moved = server
        .post(
            &agent,
            &format!("/api/items/{b}/move"),
            json!({"lane_id": in_progress}),
        )
        .await;
    moved.expect_error(409, "wip_limit_reached");
}

#[tokio::test]
async fn an_expired_lease_is_reclaimable_and_the_stale_holder_is_refused() {
    let server = TestServer::start().await;
    let board = server.board("LEASE").await;
    server
        .patch_board(board, json!({"agent_lease_seconds": 1}))
        .await;
    let item = server.item(board, "short lease").await;
    let first = server.agent("first").await;
    let second = server.agent("second").await;
    let claim = server
        .post(
            &first,
            &format!("/api/items/{item}/claim"),
            json!({"start": true}),
        )
        .await
        .expect(200);
    let first_token = claim["claim"]["token"].as_i64().expect("token");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The reaper released it and put it back where it can be claimed.
    let after = server.item_json(item).await;
    assert!(after["claim"].is_null(), "{after}");
    assert_eq!(
        after["status"], "ready",
        "an expired in-progress item goes back to ready"
    );
    assert!(
        server
            .events(item)
            .await
            .contains(&"item.claim-expired".to_owned())
    );
    let stale = server
        .post(&first, &format!("/api/items/{item}/heartbeat"), json!({}))
        .await;
    stale.expect_error(409, "not_holder");
    let retaken = server
        .post(&second, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    let second_token = retaken["claim"]["token"].as_i64().expect("token");
    assert!(second_token > first_token, "fencing tokens only grow");
    let fenced = server
        .send(
            Some(&first),
            reqwest::Method::POST,
            &format!("/api/items/{item}/heartbeat"),
            None,
            &[("x-claim-token", first_token.to_string())],
        )
        .await;
    fenced.expect_error(409, "lease_superseded");
    let moved = server
        .send(
            Some(&first),
            reqwest::Method::POST,
            &format!("/api/items/{item}/move"),
            Some(json!({"status": "done"})),
            &[("x-claim-token", first_token.to_string())],
        )
        .await;
    moved.expect_error(409, "lease_superseded");
    assert_eq!(
        server.item_json(item).await["claim"]["worker"]["name"],
        "second"
    );
}

#[tokio::test]
async fn two_processes_sharing_one_worker_are_told_apart_by_the_fencing_token() {
    let server = TestServer::start().await;
    let board = server.board("FENCE").await;
    server
        .patch_board(board, json!({"agent_lease_seconds": 1}))
        .await;
    let item = server.item(board, "shared identity").await;
    let agent = server.agent("twin").await;
    let old = server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200)["claim"]["token"]
        .as_i64()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let new = server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200)["claim"]["token"]
        .as_i64()
        .unwrap_or(0);
    assert!(new > old);
    let comment = server
        .send(
            Some(&agent),
            reqwest::Method::POST,
            &format!("/api/items/{item}/comments"),
            Some(json!({"body": "from the old process"})),
            &[("x-claim-token", old.to_string())],
        )
        .await;
    comment.expect_error(409, "lease_superseded");
    let ok = server
        .send(
            Some(&agent),
            reqwest::Method::POST,
            &format!("/api/items/{item}/heartbeat"),
            None,
            &[("x-claim-token", new.to_string())],
        )
        .await;
    ok.expect(200);
}

#[tokio::test]
async fn holder_writes_and_heartbeats_renew_the_lease() {
    let server = TestServer::start().await;
    let board = server.board("RENEW").await;
    server
        .patch_board(board, json!({"agent_lease_seconds": 2}))
        .await;
    let item = server.item(board, "renew me").await;
    let agent = server.agent("renewer").await;
    server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        server
            .post(
                &agent,
                &format!("/api/items/{item}/comments"),
                json!({"body": "still going", "kind": "progress"}),
            )
            .await
            .expect(201);
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    server
        .post(&agent, &format!("/api/items/{item}/heartbeat"), json!({}))
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    // 4.5 s after the claim, with a 2 s lease: still held thanks to renewals.
    assert_eq!(
        server.item_json(item).await["claim"]["worker"]["name"],
        "renewer"
    );
}

#[tokio::test]
async fn the_review_gate_stops_agents_at_review_and_only_a_human_moves_on() {
    let server = TestServer::start().await;
    let board = server.board("GATE").await;
    let done = server.lane_id(board, "done").await;
    server
        .patch(
            &server.admin,
            &format!("/api/lanes/{done}"),
            json!({"who": "humans"}),
        )
        .await
        .expect(200);
    let item = server.item(board, "gated").await;
    let agent = server.agent("builder").await;
    let human = server.human("reviewer").await;
    server
        .post(
            &agent,
            &format!("/api/items/{item}/claim"),
            json!({"start": true}),
        )
        .await
        .expect(200);
    let refused = server
        .post(
            &agent,
            &format!("/api/items/{item}/move"),
            json!({"status": "done"}),
        )
        .await;
    refused.expect_error(403, "forbidden");
    // The admin token's worker is human, but an agent board admin is refused too.
    let agent_admin = server
        .token("agent-admin", "agent", &["board:admin"], Some(board))
        .await;
    server
        .post(
            &agent_admin,
            &format!("/api/items/{item}/move"),
            json!({"status": "done"}),
        )
        .await
        .expect_error(403, "forbidden");
    let review = server
        .post(
            &agent,
            &format!("/api/items/{item}/move"),
            json!({"status": "review"}),
        )
        .await
        .expect(200);
    assert!(
        review["claim"].is_null(),
        "handing work to review ends the claim"
    );
    let shipped = server
        .post(
            &human,
            &format!("/api/items/{item}/move"),
            json!({"status": "done"}),
        )
        .await
        .expect(200);
    assert_eq!(shipped["status"], "done");
    let events = server.events(item).await;
    assert!(events.contains(&"item.done".to_owned()));
}

#[tokio::test]
async fn a_locked_board_refuses_changes_but_keeps_heartbeats_and_releases() {
    let server = TestServer::start().await;
    let board = server.board("LOCK").await;
    let held = server.item(board, "held").await;
    let free = server.item(board, "free").await;
    let agent = server.agent("locked-out").await;
    server
        .post(&agent, &format!("/api/items/{held}/claim"), json!({}))
        .await
        .expect(200);
    server.patch_board(board, json!({"locked": true})).await;
    server
        .post(&agent, &format!("/api/items/{free}/claim"), json!({}))
        .await
        .expect_error(423, "board_locked");
    server
        .post(&agent, "/api/claim-next", json!({"board_id": board}))
        .await
        .expect_error(423, "board_locked");
    server
        .post(
            &agent,
            &format!("/api/boards/{board}/items"),
            json!({"title": "new"}),
        )
        .await
        .expect_error(423, "board_locked");
    server
        .post(
            &agent,
            &format!("/api/items/{held}/comments"),
            json!({"body": "hi"}),
        )
        .await
        .expect_error(423, "board_locked");
    server
        .patch(
            &agent,
            &format!("/api/items/{held}"),
            json!({"title": "renamed"}),
        )
        .await
        .expect_error(423, "board_locked");
    server
        .post(
            &agent,
            &format!("/api/items/{held}/move"),
            json!({"status": "done"}),
        )
        .await
        .expect_error(423, "board_locked");
    server
        .post(&agent, &format!("/api/items/{held}/heartbeat"), json!({}))
        .await
        .expect(200);
    server
        .get(&agent, &format!("/api/items/{held}"))
        .await
        .expect(200);
    server
        .post(
            &agent,
            &format!("/api/items/{held}/release"),
            json!({"reason": "lock"}),
        )
        .await
        .expect(200);
    // Board admins still work on a locked board.
    server
        .post(
            &server.admin,
            &format!("/api/items/{free}/claim"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(server.item_json(held).await["title"], "held");
}

#[tokio::test]
async fn dependencies_hold_an_item_back_until_its_blockers_are_done() {
    let server = TestServer::start().await;
    let board = server.board("DEPS").await;
    let first = server.item(board, "first").await;
    let second = server
        .item_with(
            board,
            json!({"title": "second", "agent_ready": true, "blocked_by": [first]}),
        )
        .await;
    let agent = server.agent("dep-worker").await;
    server
        .post(&agent, &format!("/api/items/{second}/claim"), json!({}))
        .await
        .expect_error(409, "not_claimable");
    let allowed = server
        .get(&agent, &format!("/api/allowed?board_id={board}"))
        .await
        .expect(200);
    let ids: Vec<i64> = allowed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![first]);
    server
        .post(&agent, &format!("/api/items/{first}/claim"), json!({}))
        .await
        .expect(200);
    server
        .post(
            &agent,
            &format!("/api/items/{first}/move"),
            json!({"status": "done"}),
        )
        .await
        .expect(200);
    assert!(
        server
            .events(second)
            .await
            .contains(&"item.agent-ready".to_owned()),
        "unblocking announces the item"
    );
    server
        .post(&agent, &format!("/api/items/{second}/claim"), json!({}))
        .await
        .expect(200);
    // A cycle is refused and changes nothing.
    let cycle = server
        .patch(
            &server.admin,
            &format!("/api/items/{first}"),
            json!({"blocked_by": [second]}),
        )
        .await;
    cycle.expect_error(422, "validation_failed");
    assert_eq!(server.item_json(first).await["blocked_by"], json!([]));
}

#[tokio::test]
async fn agents_need_the_ready_flag_unless_the_board_says_otherwise() {
    let server = TestServer::start().await;
    let board = server.board("READY").await;
    let item = server
        .item_with(board, json!({"title": "not for bots yet"}))
        .await;
    let agent = server.agent("eager").await;
    let human = server.human("person").await;
    server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect_error(409, "not_claimable");
    assert_eq!(
        server
            .post(&agent, "/api/claim-next", json!({"board_id": board}))
            .await
            .status,
        204
    );
    server
        .patch_board(board, json!({"agents_need_ready": false}))
        .await;
    server
        .post(&agent, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    server
        .post(&human, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect_error(409, "claim_conflict");
}

#[tokio::test]
async fn blocking_with_a_note_ends_the_claim_and_hands_the_checkpoint_to_the_next_worker() {
    let server = TestServer::start().await;
    let board = server.board("HAND").await;
    let item = server.item(board, "long job").await;
    let first = server.agent("first-shift").await;
    let second = server.agent("second-shift").await;
    server
        .post(
            &first,
            &format!("/api/items/{item}/claim"),
            json!({"start": true}),
        )
        .await
        .expect(200);
    server
        .post(
            &first,
            &format!("/api/items/{item}/comments"),
            json!({"body": "parsed 40 of 90 files", "kind": "progress"}),
        )
        .await
        .expect(201);
    let blocked = server
        .post(
            &first,
            &format!("/api/items/{item}/move"),
            json!({"status": "blocked", "note": "context full; resume at file 41"}),
        )
        .await
        .expect(200);
    assert!(blocked["claim"].is_null());
    let comments = server
        .get(&server.admin, &format!("/api/items/{item}/comments"))
        .await
        .expect(200);
    let last = comments["comments"]
        .as_array()
        .and_then(|c| c.last().cloned())
        .expect("a comment");
    assert_eq!(last["kind"], "checkpoint");
    server
        .post(
            &server.admin,
            &format!("/api/items/{item}/move"),
            json!({"status": "ready"}),
        )
        .await
        .expect(200);
    let claimed = server
        .post(&second, "/api/claim-next", json!({"board_id": board}))
        .await
        .expect(200);
    assert_eq!(claimed["id"], json!(item));
    assert_eq!(
        claimed["handoff"]["checkpoint"]["body"],
        "context full; resume at file 41"
    );
    assert_eq!(
        claimed["handoff"]["progress"]["body"],
        "parsed 40 of 90 files"
    );
}

#[tokio::test]
async fn release_is_for_the_holder_or_a_board_admin_and_returns_work_to_ready() {
    let server = TestServer::start().await;
    let board = server.board("REL").await;
    let item = server.item(board, "release me").await;
    let holder = server.agent("holder").await;
    let other = server.agent("bystander").await;
    server
        .post(&other, &format!("/api/items/{item}/release"), json!({}))
        .await
        .expect_error(409, "not_holder");
    server
        .post(
            &holder,
            &format!("/api/items/{item}/claim"),
            json!({"start": true}),
        )
        .await
        .expect(200);
    server
        .post(&other, &format!("/api/items/{item}/release"), json!({}))
        .await
        .expect_error(409, "not_holder");
    server
        .post(
            &other,
            &format!("/api/items/{item}/move"),
            json!({"status": "done"}),
        )
        .await
        .expect_error(409, "not_holder");
    let released = server
        .post(
            &server.admin,
            &format!("/api/items/{item}/release"),
            json!({"reason": "stuck"}),
        )
        .await
        .expect(200);
    assert!(released["claim"].is_null());
    assert_eq!(released["status"], "ready");
    server
        .post(&holder, &format!("/api/items/{item}/heartbeat"), json!({}))
        .await
        .expect_error(409, "not_holder");
    let events = server.events(item).await;
    assert!(events.contains(&"item.released".to_owned()));
    assert_eq!(
        events.last().map(String::as_str),
        Some("item.agent-ready"),
        "{events:?}"
    );
    let again = server
        .post(&holder, &format!("/api/items/{item}/claim"), json!({}))
        .await
        .expect(200);
    assert_eq!(again["claim"]["token"], json!(2));
}

#[tokio::test]
async fn allowed_lists_held_items_first_then_by_priority_then_age() {
    let server = TestServer::start().await;
    let board = server.board("ORDER").await;
    let low = server
        .item_with(
            board,
            json!({"title": "low", "agent_ready": true, "priority": 4}),
        )
        .await;
    let urgent_old = server
        .item_with(
            board,
            json!({"title": "urgent old", "agent_ready": true, "priority": 0}),
        )
        .await;
    let urgent_new = server
        .item_with(
            board,
            json!({"title": "urgent new", "agent_ready": true, "priority": 0}),
        )
        .await;
    let normal = server
        .item_with(board, json!({"title": "normal", "agent_ready": true}))
        .await;
    let agent = server.agent("orderly").await;
    server
        .post(&agent, &format!("/api/items/{normal}/claim"), json!({}))
        .await
        .expect(200);
    let allowed = server
        .get(&agent, &format!("/api/allowed?board_id={board}"))
        .await
        .expect(200);
    let ids: Vec<i64> = allowed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![normal, urgent_old, urgent_new, low]);
    let next = server
        .post(&agent, "/api/claim-next", json!({"board_id": board}))
        .await
        .expect(200);
    assert_eq!(next["id"], json!(urgent_old));
}

#[tokio::test]
async fn claim_next_honours_kinds_and_labels() {
    let server = TestServer::start().await;
    let board = server.board("FILTER").await;
    server
        .item_with(
            board,
            json!({"title": "task", "agent_ready": true, "priority": 0}),
        )
        .await;
    let defect = server
        .item_with(
            board,
            json!({"title": "bug", "kind": "defect", "agent_ready": true, "labels": ["ui"]}),
        )
        .await;
    let labelled = server
        .item_with(
            board,
            json!({"title": "api work", "agent_ready": true, "labels": ["api", "backend"]}),
        )
        .await;
    let agent = server.agent("picky").await;
    let got = server
        .post(
            &agent,
            "/api/claim-next",
            json!({"board_id": board, "kinds": ["defect"]}),
        )
        .await
        .expect(200);
    assert_eq!(got["id"], json!(defect));
    let got = server
        .post(
            &agent,
            "/api/claim-next",
            json!({"board_id": board, "labels": ["backend", "nothing"]}),
        )
        .await
        .expect(200);
    assert_eq!(got["id"], json!(labelled));
    let none = server
        .post(
            &agent,
            "/api/claim-next",
            json!({"board_id": board, "labels": ["nothing"]}),
        )
        .await;
    assert_eq!(none.status, 204);
}
