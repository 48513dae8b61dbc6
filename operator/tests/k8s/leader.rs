//! Two operator replicas: only the lease holder reconciles; a standby takes
//! over when the leader shuts down.

use std::time::{Duration, Instant};

use k8s_openapi::api::{apps::v1::StatefulSet, coordination::v1::Lease};
use kube::Api;
use serde_json::json;
use taskharbor_tests::k8s::{ControlPlane, Operator, TIMEOUT, eventually, namespace};

use crate::lifecycle::{create, get, image_of, patch_spec, wait_for};

pub async fn only_the_leader_writes_and_a_standby_takes_over() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "leader").await;
    let flags = |id: &'static str| {
        [
            "--lease-namespace",
            ns.as_str(),
            // Long enough that a starved CI machine does not lose the lease
            // by accident; takeover below is by release, not by expiry.
            "--lease-seconds",
            "6",
            "--identity",
            id,
        ]
        .map(str::to_owned)
    };
    let fa = flags("replica-a");
    let a = Operator::start(
        client.clone(),
        &ns,
        &fa.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eventually(TIMEOUT, "replica-a leads", || async {
        (a.metrics.leader.get() == 1).then_some(())
    })
    .await;
    let fb = flags("replica-b");
    let b = Operator::start(
        client.clone(),
        &ns,
        &fb.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    create(
        &client,
        &ns,
        "lead",
        json!({"tenant": "lead", "version": "0.1.0"}),
    )
    .await;
    let _: StatefulSet = wait_for(&client, &ns, "th-lead").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        a.metrics.total_writes() > 0,
        "the leader applied the children"
    );
    assert_eq!(b.metrics.leader.get(), 0, "the standby must not lead");
    assert_eq!(
        b.metrics.reconciles.get(),
        0,
        "the standby must not reconcile"
    );
    assert_eq!(b.metrics.total_writes(), 0, "the standby must not write");
    let lease = Api::<Lease>::namespaced(client.clone(), &ns)
        .get("taskharbor-operator")
        .await
        .expect("lease exists");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-a")
    );

    // Graceful stop releases the lease; the standby takes over and reconciles.
    a.stop().await;
    eventually(TIMEOUT, "replica-b leads", || async {
        (b.metrics.leader.get() == 1).then_some(())
    })
    .await;
    patch_spec(&client, &ns, "lead", json!({"version": "0.3.0"})).await;
    eventually(TIMEOUT, "new leader rolls the image", || async {
        let sts: StatefulSet = get(&client, &ns, "th-lead").await?;
        (image_of(&sts).as_deref() == Some("ghcr.io/taskharbor/taskharbor:0.3.0")).then_some(())
    })
    .await;
    assert!(b.metrics.total_writes() > 0);
    b.stop().await;
}

pub async fn standby_takes_over_an_expired_lease_after_the_leader_vanishes() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "expiry").await;
    let flags = |id: &'static str| {
        [
            "--lease-namespace",
            ns.as_str(),
            "--lease-seconds",
            "3",
            "--identity",
            id,
        ]
        .map(str::to_owned)
    };
    let fa = flags("crash-a");
    let a = Operator::start(
        client.clone(),
        &ns,
        &fa.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eventually(TIMEOUT, "crash-a leads", || async {
        (a.metrics.leader.get() == 1).then_some(())
    })
    .await;
    let fb = flags("crash-b");
    let b = Operator::start(
        client.clone(),
        &ns,
        &fb.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.metrics.leader.get(), 0, "a live leader keeps its lease");

    a.crash();
    let crashed = Instant::now();
    eventually(TIMEOUT, "crash-b leads", || async {
        (b.metrics.leader.get() == 1).then_some(())
    })
    .await;
    assert!(
        crashed.elapsed() >= Duration::from_secs(2),
        "an unreleased lease is taken over only after it expires ({:?})",
        crashed.elapsed()
    );
    let spec = Api::<Lease>::namespaced(client.clone(), &ns)
        .get("taskharbor-operator")
        .await
        .expect("lease")
        .spec
        .expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("crash-b"));
    assert!(spec.lease_transitions.unwrap_or(0) >= 1);

    create(
        &client,
        &ns,
        "after",
        json!({"tenant": "after", "version": "0.1.0"}),
    )
    .await;
    let _: StatefulSet = wait_for(&client, &ns, "th-after").await;
    b.stop().await;
}
