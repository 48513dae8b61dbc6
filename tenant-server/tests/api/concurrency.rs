//! Many workers, one queue: atomic claims, no double claims, no hoarding.

use crate::support::TestServer;
use futures_util::future::join_all;
use serde_json::json;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_claimers_of_one_item_get_exactly_one_200_and_39_conflicts_naming_the_holder()
 {
    let server = TestServer::start().await;
    let board = server.board("RACE").await;
    let item = server.item(board, "contested").await;
    let mut tokens = Vec::new();
    for n in 0..40 {
        tokens.push((
            format!("racer-{n}"),
            server.agent(&format!("racer-{n}")).await,
        ));
    }
    let path = format!("/api/items/{item}/claim");
    let replies = join_all(tokens.iter().map(|(_, t)| server.post(t, &path, json!({})))).await;
    let winners: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 200)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claimer wins");
    let winner = &tokens[winners[0]].0;
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.expect_error(409, "claim_conflict");
        assert_eq!(
            reply.body["error"]["details"]["holder"]["name"],
            json!(winner)
        );
        assert!(reply.body["error"]["details"]["lease_expires_at"].is_string());
        assert!(reply.body["error"]["details"]["claimed_at"].is_string());
    }
    let held = server.item_json(item).await;
    assert_eq!(held["claim"]["worker"]["name"], json!(winner));
    let claimed_events = server
        .events(item)
        .await
        .iter()
        .filter(|e| *e == "item.claimed")
        .count();
    assert_eq!(claimed_events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swarm_draining_the_board_with_claim_next_claims_every_item_exactly_once() {
    let server = TestServer::start().await;
    let board = server.board("SWARM").await;
    server.patch_board(board, json!({"claim_limit": 2})).await;
    let total = 120;
    for n in 0..total {
        server
            .item_with(
                board,
                json!({"title": format!("job {n}"), "agent_ready": true, "priority": n % 5}),
            )
            .await;
    }
    let mut workers = Vec::new();
    for n in 0..12 {
        workers.push(server.agent(&format!("swarm-{n}")).await);
    }
    let runs = workers.iter().map(|token| {
        let server = &server;
        async move {
            let mut mine = Vec::new();
            loop {
                let reply = server
                    .post(
                        token,
                        "/api/claim-next",
                        json!({"board_id": board, "start": false}),
                    )
                    .await;
                match reply.status.as_u16() {
                    204 => return mine,
                    200 => {
                        let id = reply.body["id"].as_i64().expect("id");
                        mine.push(id);
                        server
                            .post(
                                token,
                                &format!("/api/items/{id}/move"),
                                json!({"status": "done"}),
                            )
                            .await
                            .expect(200);
                    }
                    other => panic!("unexpected {other}: {}", reply.body),
                }
            }
        }
    });
    let claimed: Vec<i64> = join_all(runs).await.into_iter().flatten().collect();
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for id in &claimed {
        *counts.entry(*id).or_default() += 1;
    }
    assert_eq!(counts.len(), total as usize, "every item was claimed");
    assert!(
        counts.values().all(|c| *c == 1),
        "no item was claimed twice: {counts:?}"
    );
    let done = server
        .get(
            &server.admin,
            &format!("/api/boards/{board}/items?status=done&limit=200"),
        )
        .await
        .expect(200);
    assert_eq!(done["items"].as_array().map(Vec::len), Some(total as usize));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_workers_concurrent_claims_never_exceed_its_claim_limit() {
    let server = TestServer::start().await;
    let board = server.board("LIMIT").await;
    server.patch_board(board, json!({"claim_limit": 3})).await;
    let mut items = Vec::new();
    for n in 0..20 {
        items.push(server.item(board, &format!("item {n}")).await);
    }
    let token = server.agent("hoarder").await;
    let paths: Vec<String> = items
        .iter()
        .map(|id| format!("/api/items/{id}/claim"))
        .collect();
    let replies = join_all(
        paths
            .iter()
            .map(|path| server.post(&token, path, json!({}))),
    )
    .await;
    let won = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(won, 3, "exactly the limit is granted");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.expect_error(409, "claim_limit_reached");
        assert_eq!(reply.body["error"]["details"]["limit"], json!(3));
        assert_eq!(reply.body["error"]["details"]["held"], json!(3));
    }
    let next = server
        .post(&token, "/api/claim-next", json!({"board_id": board}))
        .await;
    next.expect_error(409, "claim_limit_reached");
    let allowed = server
        .get(&token, &format!("/api/allowed?board_id={board}"))
        .await
        .expect(200);
    let shown = allowed["items"].as_array().expect("items");
    assert_eq!(
        shown.len(),
        3,
        "a worker at its limit sees only what it holds"
    );
    assert!(
        shown
            .iter()
            .all(|i| i["claim"]["worker"]["name"] == "hoarder")
    );
}
