//! Creating, readying, upgrading and repairing a tenant.

use std::time::Duration;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Pod, Secret, Service},
        events::v1::Event,
        networking::v1::{Ingress, NetworkPolicy},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use taskharbor_operator::crd::{Phase, TaskHarbor, TaskHarborSpec};
use taskharbor_tests::k8s::{
    ControlPlane, Operator, TIMEOUT, eventually, namespace, simulate_pod_ready,
};

pub async fn create(client: &Client, ns: &str, name: &str, spec: serde_json::Value) -> TaskHarbor {
    let spec: TaskHarborSpec = serde_json::from_value(spec).expect("spec");
    Api::<TaskHarbor>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &TaskHarbor::new(name, spec))
        .await
        .expect("TaskHarbor created")
}

pub async fn patch_spec(client: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    Api::<TaskHarbor>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("spec patched");
}

/// Waits until the resource's status satisfies `check`, returning the resource.
pub async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&TaskHarbor) -> bool,
) -> TaskHarbor {
    let api: Api<TaskHarbor> = Api::namespaced(client.clone(), ns);
    eventually(TIMEOUT, what, || async {
        let th = api.get_opt(name).await.ok().flatten()?;
        check(&th).then_some(th)
    })
    .await
}

pub fn phase(th: &TaskHarbor) -> Option<Phase> {
    th.status.as_ref().and_then(|s| s.phase)
}

pub fn condition<'a>(
    th: &'a TaskHarbor,
    type_: &str,
) -> Option<&'a taskharbor_operator::crd::Condition> {
    th.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

pub async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

pub async fn wait_for<K>(client: &Client, ns: &str, name: &str) -> K
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    eventually(
        TIMEOUT,
        &format!("{} {name}", std::any::type_name::<K>()),
        || get::<K>(client, ns, name),
    )
    .await
}

pub fn image_of(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    th: &TaskHarbor,
) -> bool {
    meta.owner_references.iter().flatten().any(|r| {
        Some(&r.uid) == th.metadata.uid.as_ref()
            && r.kind == "TaskHarbor"
            && r.controller == Some(true)
    })
}

fn token_of(secret: &Secret) -> String {
    let data = secret.data.as_ref().expect("secret data");
    String::from_utf8(data["bootstrap-token"].0.clone()).expect("utf-8 token")
}

pub async fn crd_installs_and_the_schema_rejects_a_bad_tenant() {
    let client = ControlPlane::get().client().await;
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("taskharbors.taskharbor.dev")
        .await
        .expect("CRD installed");
    assert_eq!(crd.spec.names.short_names, Some(vec!["th".to_owned()]));
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(columns, ["Phase", "URL", "Version", "Age"]);
    assert!(
        crd.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );

    let ns = namespace(&client, "crd").await;
    let api: Api<TaskHarbor> = Api::namespaced(client.clone(), &ns);
    for (tenant, version) in [("Bad_Name", "0.1.0"), ("acme", "")] {
        let spec: TaskHarborSpec =
            serde_json::from_value(json!({"tenant": tenant, "version": version})).expect("spec");
        let err = api
            .create(&PostParams::default(), &TaskHarbor::new("bad", spec))
            .await
            .expect_err("the schema must reject it");
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 422),
            "got {err:?}"
        );
    }
    // The shipped samples are accepted by the real schema.
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples");
    for entry in std::fs::read_dir(samples).expect("samples") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("sample");
        let mut th: TaskHarbor = serde_yaml::from_str(&text).expect("sample parses");
        th.metadata.namespace = Some(ns.clone());
        api.create(&PostParams::default(), &th)
            .await
            .expect("sample accepted by the API server");
    }
    // Defaults from the schema are applied by the API server.
    let created = create(
        &client,
        &ns,
        "defaults",
        json!({"tenant": "defaults", "version": "0.1.0"}),
    )
    .await;
    assert_eq!(created.spec.storage.size, "1Gi");
    assert!(created.spec.storage.retain_on_delete);
}

pub async fn new_resource_gets_owned_children_then_ready_then_rolls_on_version_change() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "life").await;
    let op = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    let th = create(
        &client,
        &ns,
        "acme",
        json!({"tenant": "acme", "version": "0.1.0", "host": "acme.example.com"}),
    )
    .await;

    let sts: StatefulSet = wait_for(&client, &ns, "th-acme").await;
    let secret: Secret = wait_for(&client, &ns, "th-acme").await;
    let svc: Service = wait_for(&client, &ns, "th-acme").await;
    let ing: Ingress = wait_for(&client, &ns, "th-acme").await;
    let np: NetworkPolicy = wait_for(&client, &ns, "th-acme").await;
    for meta in [
        &sts.metadata,
        &secret.metadata,
        &svc.metadata,
        &ing.metadata,
        &np.metadata,
    ] {
        assert!(
            owned_by(meta, &th),
            "{:?} must be owned by the TaskHarbor",
            meta.name
        );
    }
    let token = token_of(&secret);
    assert!(
        token.starts_with("th_") && token.len() == 46,
        "token shape: {}",
        token.len()
    );
    let spec = sts.spec.as_ref().expect("sts spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        image_of(&sts).as_deref(),
        Some("ghcr.io/taskharbor/taskharbor:0.1.0")
    );
    let pod = spec.template.spec.as_ref().expect("pod");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let env: Vec<String> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    for name in [
        "TASKHARBOR_DATA_DIR",
        "TASKHARBOR_LISTEN",
        "TASKHARBOR_BOOTSTRAP_TOKEN",
    ] {
        assert!(env.iter().any(|e| e == name), "{name} missing from {env:?}");
    }
    assert_eq!(spec.volume_claim_templates.as_ref().map(Vec::len), Some(1));
    let port = &svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .expect("ports")[0];
    assert_eq!((port.port, port.protocol.as_deref()), (80, Some("TCP")));
    let tls = ing.spec.as_ref().and_then(|s| s.tls.clone()).expect("tls");
    assert_eq!(tls[0].hosts, Some(vec!["acme.example.com".to_owned()]));
    assert_eq!(
        np.spec.as_ref().and_then(|s| s.policy_types.clone()),
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );

    let th = wait_status(&client, &ns, "acme", "status Progressing", |th| {
        matches!(phase(th), Some(Phase::Pending | Phase::Provisioning))
            && condition(th, "Progressing").is_some_and(|c| c.status == "True")
    })
    .await;
    let status = th.status.as_ref().expect("status");
    assert_eq!(status.url.as_deref(), Some("https://acme.example.com"));
    assert_eq!(status.observed_generation, th.metadata.generation);

    // The StatefulSet controller creates the pod; play kubelet and make it ready.
    let _pod: Pod = wait_for(&client, &ns, "th-acme-0").await;
    simulate_pod_ready(&client, &ns, "th-acme-0").await;
    let th = wait_status(&client, &ns, "acme", "status Ready", |th| {
        phase(th) == Some(Phase::Ready)
    })
    .await;
    let ready = condition(&th, "Ready").expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "PodReady")
    );
    assert_eq!(
        condition(&th, "Degraded").map(|c| c.status.as_str()),
        Some("False")
    );

    // Every phase change was announced with an event.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let reasons: Vec<String> = eventually(TIMEOUT, "Ready event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme"))
            .filter_map(|e| e.reason.clone())
            .collect();
        reasons.iter().any(|r| r == "Ready").then_some(reasons)
    })
    .await;
    assert!(
        reasons
            .iter()
            .any(|r| r == "Pending" || r == "Provisioning"),
        "{reasons:?}"
    );

    // A new version rolls the pod to the new image; the token stays.
    patch_spec(&client, &ns, "acme", json!({"version": "0.2.0"})).await;
    eventually(TIMEOUT, "StatefulSet image 0.2.0", || async {
        let sts: StatefulSet = get(&client, &ns, "th-acme").await?;
        (image_of(&sts).as_deref() == Some("ghcr.io/taskharbor/taskharbor:0.2.0")).then_some(())
    })
    .await;
    eventually(TIMEOUT, "pod recreated with image 0.2.0", || async {
        let pod: Pod = get(&client, &ns, "th-acme-0").await?;
        let image = pod.spec?.containers.first()?.image.clone()?;
        (image == "ghcr.io/taskharbor/taskharbor:0.2.0").then_some(())
    })
    .await;
    let th = wait_status(&client, &ns, "acme", "Provisioning after upgrade", |th| {
        phase(th) == Some(Phase::Provisioning)
            && th.status.as_ref().and_then(|s| s.observed_generation) == th.metadata.generation
    })
    .await;
    assert_eq!(th.spec.version, "0.2.0");
    simulate_pod_ready(&client, &ns, "th-acme-0").await;
    wait_status(&client, &ns, "acme", "Ready on 0.2.0", |th| {
        phase(th) == Some(Phase::Ready)
            && condition(th, "Ready").is_some_and(|c| c.message.contains("0.2.0"))
    })
    .await;
    let secret: Secret = wait_for(&client, &ns, "th-acme").await;
    assert_eq!(
        token_of(&secret),
        token,
        "the bootstrap token must never be rotated"
    );

    // Removing the host removes the Ingress.
    Api::<TaskHarbor>::namespaced(client.clone(), &ns)
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "remove", "path": "/spec/host"}]))
                    .expect("json patch"),
            ),
        )
        .await
        .expect("host removed");
    eventually(TIMEOUT, "Ingress removed", || async {
        get::<Ingress>(&client, &ns, "th-acme")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    op.stop().await;
}

pub async fn deleted_child_is_recreated_and_hand_edits_are_reverted() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "drift").await;
    let op = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    create(
        &client,
        &ns,
        "drift",
        json!({"tenant": "drift", "version": "0.1.0"}),
    )
    .await;
    let svc: Service = wait_for(&client, &ns, "th-drift").await;
    let sts: StatefulSet = wait_for(&client, &ns, "th-drift").await;
    let _: NetworkPolicy = wait_for(&client, &ns, "th-drift").await;

    Api::<Service>::namespaced(client.clone(), &ns)
        .delete("th-drift", &DeleteParams::default())
        .await
        .expect("service deleted");
    Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .delete("th-drift", &DeleteParams::default())
        .await
        .expect("network policy deleted");
    eventually(TIMEOUT, "Service recreated", || async {
        let new: Service = get(&client, &ns, "th-drift").await?;
        (new.uid() != svc.uid()).then_some(())
    })
    .await;
    let _: NetworkPolicy = wait_for(&client, &ns, "th-drift").await;

    // A hand edit of a field the operator manages, by another field manager.
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let container = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "taskharbor", "image": "evil.example.com/miner:latest"}]}}}});
    // The patch response shows the edit landed; a later GET could already
    // see the operator's correction.
    let edited = api
        .patch("th-drift", &edit, &Patch::Strategic(container))
        .await
        .expect("hand edit");
    assert_eq!(
        image_of(&edited).as_deref(),
        Some("evil.example.com/miner:latest")
    );
    eventually(TIMEOUT, "image edit reverted", || async {
        let sts: StatefulSet = get(&client, &ns, "th-drift").await?;
        (image_of(&sts).as_deref() == Some("ghcr.io/taskharbor/taskharbor:0.1.0")).then_some(())
    })
    .await;
    let scaled = api
        .patch(
            "th-drift",
            &edit,
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale edit");
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(3));
    eventually(TIMEOUT, "replica edit reverted", || async {
        let sts: StatefulSet = get(&client, &ns, "th-drift").await?;
        (sts.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        sts.uid(),
        api.get("th-drift").await.expect("sts").uid(),
        "fixed in place, not recreated"
    );
    op.stop().await;
}

pub async fn steady_state_resync_writes_nothing() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "steady").await;
    let op = Operator::start(
        client.clone(),
        &ns,
        &["--leader-elect", "false", "--resync-seconds", "1"],
    );
    for name in ["one", "two", "three"] {
        create(
            &client,
            &ns,
            name,
            json!({"tenant": name, "version": "0.1.0", "host": format!("{name}.example.com")}),
        )
        .await;
    }
    for name in ["one", "two", "three"] {
        wait_status(&client, &ns, name, "Provisioning", |th| {
            phase(th) == Some(Phase::Provisioning)
        })
        .await;
    }
    // Let the StatefulSet controller finish its own status updates.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = op.metrics.total_writes();
    let reconciles = op.metrics.reconciles.get();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        op.metrics.reconciles.get() >= reconciles + 6,
        "resync every second should have reconciled each resource again ({} -> {})",
        reconciles,
        op.metrics.reconciles.get()
    );
    assert_eq!(
        op.metrics.total_writes(),
        writes,
        "a resync with nothing changed must not write:\n{}",
        op.metrics.render()
    );
    op.stop().await;
}

pub async fn invalid_spec_is_degraded_with_a_clear_message() {
    let client = ControlPlane::get().client().await;
    let ns = namespace(&client, "invalid").await;
    let op = Operator::start(client.clone(), &ns, &["--leader-elect", "false"]);
    create(
        &client,
        &ns,
        "bad",
        json!({"tenant": "bad", "version": "1.0 beta"}),
    )
    .await;
    let th = wait_status(&client, &ns, "bad", "Degraded", |th| {
        phase(th) == Some(Phase::Degraded)
    })
    .await;
    let degraded = condition(&th, "Degraded").expect("Degraded condition");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        degraded.message.contains("spec.version") && degraded.message.contains("1.0 beta"),
        "{}",
        degraded.message
    );
    assert!(
        get::<StatefulSet>(&client, &ns, "th-bad").await.is_none(),
        "nothing is built from an invalid spec"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "Warning event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Degraded")
            })
            .then_some(())
    })
    .await;
    // Fixing the spec is a change, which wakes the resource up again.
    patch_spec(&client, &ns, "bad", json!({"version": "0.1.0"})).await;
    let _: StatefulSet = wait_for(&client, &ns, "th-bad").await;
    let recovered = |th: &TaskHarbor| {
        matches!(phase(th), Some(Phase::Pending | Phase::Provisioning))
            && condition(th, "Degraded").is_some_and(|c| c.status == "False")
    };
    wait_status(&client, &ns, "bad", "recovered", recovered).await;

    // The tenant id is immutable: renaming would orphan the pod and volume.
    patch_spec(&client, &ns, "bad", json!({"tenant": "renamed"})).await;
    let th = wait_status(&client, &ns, "bad", "Degraded on tenant change", |th| {
        phase(th) == Some(Phase::Degraded)
    })
    .await;
    let message = &condition(&th, "Degraded").expect("Degraded").message;
    assert!(
        message.contains("immutable") && message.contains("\"bad\""),
        "{message}"
    );
    assert!(
        get::<StatefulSet>(&client, &ns, "th-renamed")
            .await
            .is_none(),
        "no second tenant built"
    );
    patch_spec(&client, &ns, "bad", json!({"tenant": "bad"})).await;
    wait_status(
        &client,
        &ns,
        "bad",
        "recovered after tenant restored",
        recovered,
    )
    .await;

    // A change the API server refuses (volume claim templates are immutable)
    // is reported, not retried forever.
    patch_spec(&client, &ns, "bad", json!({"storage": {"size": "5Gi"}})).await;
    let th = wait_status(
        &client,
        &ns,
        "bad",
        "Degraded on rejected StatefulSet",
        |th| phase(th) == Some(Phase::Degraded),
    )
    .await;
    let degraded = condition(&th, "Degraded").expect("Degraded");
    assert_eq!(degraded.reason, "Rejected");
    assert!(
        degraded.message.contains("StatefulSet"),
        "{}",
        degraded.message
    );
    op.stop().await;
}
