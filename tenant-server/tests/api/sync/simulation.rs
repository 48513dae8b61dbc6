//! A randomised two-sided run: edits on the board and on GitHub, with the
//! webhooks dropped, duplicated and reordered, ends with every issue equal
//! to its item and exactly one issue per item (webhooks plus the
//! reconciler's polling).

use super::standin::Remote;
use super::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use taskharbor::sync::mapping::{user_body, user_labels};

#[tokio::test]
async fn dropped_duplicated_and_reordered_webhooks_still_converge_without_duplicates() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let remote = Remote::start(REPO).await;
    let s = server(400, |_| {}).await;
    let board = s.board("SIM").await;
    let secret = link_github(&s, board, &remote, "none").await["webhook_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let mut items = Vec::new();
    for n in 0..6 {
        items.push(
            s.item_with(
                board,
                json!({"title": format!("item {n}"), "labels": ["sim"]}),
            )
            .await,
        );
    }
    eventually(20, "all linked", || async {
        let mut all = true;
        for id in &items {
            all &= remote_number(&s, *id).await.is_some();
        }
        all
    })
    .await;
    let mut held: Vec<(Value, String)> = Vec::new();
    let mut delivery = 0;
    for step in 0..60 {
        let item = items[rng.random_range(0..items.len())];
        if rng.random_bool(0.5) {
            let body = match rng.random_range(0..4) {
                0 => json!({"title": format!("board {step}")}),
                1 => json!({"body": format!("board body {step}")}),
                2 => json!({"labels": ["sim", format!("b{step}")]}),
                _ => {
                    let status = if rng.random_bool(0.5) {
                        "done"
                    } else {
                        "backlog"
                    };
                    s.post(
                        &s.admin,
                        &format!("/api/items/{item}/move"),
                        json!({"status": status}),
                    )
                    .await
                    .expect(200);
                    continue;
                }
            };
            s.patch(&s.admin, &format!("/api/items/{item}"), body)
                .await
                .expect(200);
        } else {
            let Some(number) = remote_number(&s, item).await else {
                continue;
            };
            let choice = rng.random_range(0..4);
            remote.lock().edit(number, |i| match choice {
                0 => i.title = format!("remote {step}"),
                1 => i.body = format!("remote body {step}"),
                2 => i.labels.push(format!("r{step}")),
                _ => i.closed = !i.closed,
            });
            delivery += 1;
            let payload = issues_payload("edited", number, "simulator");
            let id = format!("sim-{delivery}");
            match rng.random_range(0..10) {
                0..=3 => {} // dropped
                4..=5 => {
                    deliver(&s, board, "issues", &payload, &secret, &id).await;
                    deliver(&s, board, "issues", &payload, &secret, &id).await;
                }
                6..=7 => held.push((payload, id)),
                _ => {
                    deliver(&s, board, "issues", &payload, &secret, &id).await;
                }
            }
        }
        if rng.random_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        }
    }
    held.shuffle(&mut rng);
    for (payload, id) in held {
        deliver(&s, board, "issues", &payload, &secret, &id).await;
    }
    // Converged: every issue equals its item, twice in a row.
    let mut stable = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while stable < 2 {
        assert!(
            Instant::now() < deadline,
            "no convergence (seed {seed}): {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut same = true;
        for id in &items {
            let v = s.item_json(*id).await;
            let Some(number) = v["sync"]["number"].as_i64() else {
                same = false;
                continue;
            };
            let issue = remote.lock().issues[&number].clone();
            let labels: Vec<String> = v["labels"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut board_labels = labels.clone();
            board_labels.sort();
            let ok = issue.title == v["title"]
                && user_body(&issue.body) == v["body"].as_str().unwrap_or_default().trim_end()
                && user_labels(&issue.labels) == board_labels
                && issue.closed == (v["status"] == "done")
                && v["sync"]["state"] != "pending";
            if !ok {
                last = format!("item {id}: {v} vs {issue:?}");
            }
            same &= ok;
        }
        stable = if same { stable + 1 } else { 0 };
    }
    let r = remote.lock();
    assert_eq!(
        r.issues.len(),
        items.len(),
        "one issue per item (seed {seed})"
    );
    assert_eq!(r.count("create_issue"), items.len());
}
