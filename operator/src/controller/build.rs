//! The pure part of reconciliation: from a `TaskHarbor` resource (plus the
//! operator's settings and the tenant's already-generated secrets) to the
//! exact objects that should exist. No I/O happens here, so every spec
//! variation is unit-tested without a cluster; `apply` sends the result with
//! server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
            HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
            PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
            SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
            VolumeMount, VolumeResourceRequirements,
        },
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, IPBlock, Ingress, IngressBackend, IngressRule,
            IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
            NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
            ServiceBackendPort,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::Resource;

use crate::crd::TaskHarbor;

/// Key of the bootstrap admin token in the tenant Secret.
pub const BOOTSTRAP_TOKEN_KEY: &str = "bootstrap-token";
/// Key of the webhook signing key in the tenant Secret.
pub const WEBHOOK_SIGNING_KEY: &str = "webhook-signing-key";
/// Optional sync credentials the control plane or an admin may add to the Secret.
pub const GITHUB_TOKEN_KEY: &str = "github-token";
pub const GITLAB_TOKEN_KEY: &str = "gitlab-token";
/// Label that marks every object this operator manages (also the watch selector).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "taskharbor-operator";
pub const TENANT_LABEL: &str = "taskharbor.dev/tenant";
/// Name of the volume claim template; PVCs are named `data-th-<tenant>-0`.
pub const DATA_VOLUME: &str = "data";
/// Non-root uid/gid of the distroless image.
pub const RUN_AS_USER: i64 = 65532;
const HTTP_PORT: i32 = 8080;

/// Operator-wide settings that shape the children (from command-line flags).
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// Image repository used when `spec.image` is not set.
    pub default_image: String,
    /// Namespace of the ingress controller (allowed to reach tenant pods).
    pub ingress_namespace: String,
    /// Namespace of the control plane (allowed to reach tenant pods).
    pub control_plane_namespace: String,
    /// `ingressClassName` of created Ingresses; the cluster default when None.
    pub ingress_class: Option<String>,
    /// Destinations tenant pods may not reach (cluster and private ranges).
    pub egress_denied_cidrs: Vec<String>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            default_image: "ghcr.io/taskharbor/taskharbor".into(),
            ingress_namespace: "ingress-nginx".into(),
            control_plane_namespace: "taskharbor-system".into(),
            ingress_class: None,
            egress_denied_cidrs: DEFAULT_DENIED_CIDRS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// RFC 1918, CGNAT, link-local (cloud metadata endpoints) and loopback.
pub const DEFAULT_DENIED_CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
];

/// Secret material generated once per tenant and then carried over from the
/// live Secret (reconcile never rotates it). Not `Debug` on purpose.
#[derive(Clone, PartialEq)]
pub struct TenantSecrets {
    pub bootstrap_token: String,
    pub webhook_signing_key: String,
}

/// Everything that should exist for one tenant.
#[derive(Clone, Debug)]
pub struct Desired {
    pub secret: Secret,
    pub stateful_set: StatefulSet,
    pub service: Service,
    /// None: no `spec.host`, so any existing Ingress is removed.
    pub ingress: Option<Ingress>,
    pub network_policy: NetworkPolicy,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("resource has no {0} yet (not read from the API server?)")]
    MissingMetadata(&'static str),
}

/// `th-<tenant>`: the name of every child object.
pub fn child_name(tenant: &str) -> String {
    format!("th-{tenant}")
}

/// Name of the PVC the StatefulSet controller creates for the tenant's single replica.
pub fn pvc_name(tenant: &str) -> String {
    format!("{DATA_VOLUME}-{}-0", child_name(tenant))
}

/// The URL in `status.url`: the public host when set, else the Service's cluster DNS name.
pub fn url(th: &TaskHarbor, namespace: &str) -> String {
    match &th.spec.host {
        Some(host) => format!("https://{host}"),
        None => format!(
            "http://{}.{namespace}.svc.cluster.local",
            child_name(&th.spec.tenant)
        ),
    }
}

/// Image reference `repository:version`.
pub fn image(th: &TaskHarbor, cfg: &BuildConfig) -> String {
    let repo = th.spec.image.as_deref().unwrap_or(&cfg.default_image);
    format!("{repo}:{}", th.spec.version)
}

/// Labels on every child (the pod selector is the first two).
pub fn labels(tenant: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(tenant);
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels.insert(TENANT_LABEL.into(), tenant.into());
    labels
}

fn selector_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "taskharbor".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), child_name(tenant)),
    ])
}

/// Builds the desired children. Pure: same inputs, same output.
pub fn build(
    th: &TaskHarbor,
    cfg: &BuildConfig,
    secrets: &TenantSecrets,
) -> Result<Desired, BuildError> {
    let namespace = th
        .meta()
        .namespace
        .clone()
        .ok_or(BuildError::MissingMetadata("namespace"))?;
    let owner = th
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingMetadata("name or uid"))?;
    let tenant = &th.spec.tenant;
    let meta = ObjectMeta {
        name: Some(child_name(tenant)),
        namespace: Some(namespace),
        labels: Some(labels(tenant)),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    Ok(Desired {
        secret: secret(meta.clone(), secrets),
        stateful_set: stateful_set(th, cfg, meta.clone()),
        service: service(tenant, meta.clone()),
        ingress: th
            .spec
            .host
            .as_deref()
            .map(|host| ingress(tenant, host, cfg, meta.clone())),
        network_policy: network_policy(tenant, cfg, meta),
    })
}

fn secret(meta: ObjectMeta, secrets: &TenantSecrets) -> Secret {
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                BOOTSTRAP_TOKEN_KEY.to_owned(),
                ByteString(secrets.bootstrap_token.as_bytes().to_vec()),
            ),
            (
                WEBHOOK_SIGNING_KEY.to_owned(),
                ByteString(secrets.webhook_signing_key.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_from_secret(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn stateful_set(th: &TaskHarbor, cfg: &BuildConfig, meta: ObjectMeta) -> StatefulSet {
    let spec = &th.spec;
    let name = child_name(&spec.tenant);
    let mut env = vec![
        env("TASKHARBOR_DATA_DIR", "/data"),
        env("TASKHARBOR_LISTEN", "0.0.0.0:8080"),
        env_from_secret(
            "TASKHARBOR_BOOTSTRAP_TOKEN",
            &name,
            BOOTSTRAP_TOKEN_KEY,
            false,
        ),
        env_from_secret(
            "TASKHARBOR_WEBHOOK_SIGNING_KEY",
            &name,
            WEBHOOK_SIGNING_KEY,
            false,
        ),
        env(
            "TASKHARBOR_SYNC",
            if spec.sync.enabled { "on" } else { "off" },
        ),
    ];
    if spec.sync.enabled {
        // Optional: sync credentials are added to the Secret by the control plane
        // or an admin, possibly after the pod first starts.
        env.push(env_from_secret(
            "TASKHARBOR_GITHUB_TOKEN",
            &name,
            GITHUB_TOKEN_KEY,
            true,
        ));
        env.push(env_from_secret(
            "TASKHARBOR_GITLAB_TOKEN",
            &name,
            GITLAB_TOKEN_KEY,
            true,
        ));
    }

    let mut limits = BTreeMap::from([(
        "memory".to_owned(),
        Quantity(spec.resources.limits.memory.clone()),
    )]);
    if let Some(cpu) = &spec.resources.limits.cpu {
        limits.insert("cpu".into(), Quantity(cpu.clone()));
    }
    let container = Container {
        name: "taskharbor".into(),
        image: Some(image(th, cfg)),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: HTTP_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                (
                    "cpu".to_owned(),
                    Quantity(spec.resources.requests.cpu.clone()),
                ),
                (
                    "memory".to_owned(),
                    Quantity(spec.resources.requests.memory.clone()),
                ),
            ])),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: "/data".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };

    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(labels(&spec.tenant)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };

    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            // Suspend scales to zero; the claim (and its data) stays.
            replicas: Some(if spec.suspend { 0 } else { 1 }),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&spec.tenant)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&spec.tenant)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        fs_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "tmp".into(),
                        empty_dir: Some(EmptyDirVolumeSource {
                            size_limit: Some(Quantity("64Mi".into())),
                            ..EmptyDirVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn service(tenant: &str, meta: ObjectMeta) -> Service {
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(tenant)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                // Kubernetes 1.20 server-side apply needs the protocol spelled out
                // (it is part of the list's merge key).
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn ingress(tenant: &str, host: &str, cfg: &BuildConfig, meta: ObjectMeta) -> Ingress {
    let name = child_name(tenant);
    Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: cfg.ingress_class.clone(),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![host.into()]),
                secret_name: Some(format!("{name}-tls")),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(host.into()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name,
                                port: Some(ServiceBackendPort {
                                    number: Some(80),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            // Set automatically on every namespace since Kubernetes 1.21;
            // on older clusters label the two namespaces by hand.
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    }
}

fn network_policy(tenant: &str, cfg: &BuildConfig, meta: ObjectMeta) -> NetworkPolicy {
    let mut dns_peer = namespace_peer("kube-system");
    dns_peer.pod_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "k8s-app".to_owned(),
            "kube-dns".to_owned(),
        )])),
        ..LabelSelector::default()
    });
    NetworkPolicy {
        metadata: meta,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(tenant)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    namespace_peer(&cfg.ingress_namespace),
                    namespace_peer(&cfg.control_plane_namespace),
                ]),
                ports: Some(vec![port("TCP", HTTP_PORT)]),
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![dns_peer]),
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                },
                // Webhooks and GitHub/GitLab sync need the public internet,
                // but nothing inside the cluster or the private network.
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: "0.0.0.0/0".into(),
                            except: Some(cfg.egress_denied_cidrs.clone())
                                .filter(|cidrs| !cidrs.is_empty()),
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: None,
                },
            ]),
        }),
    }
}

/// Owner reference check used when deciding whether an object is ours to touch.
pub fn is_owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r: &OwnerReference| r.uid == owner_uid && r.controller == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TaskHarborSpec;

    fn resource(spec: serde_json::Value) -> TaskHarbor {
        let spec: TaskHarborSpec = serde_json::from_value(spec).expect("spec parses");
        let mut th = TaskHarbor::new("acme", spec);
        th.metadata.namespace = Some("tenants".into());
        th.metadata.uid = Some("uid-1".into());
        th
    }

    fn secrets() -> TenantSecrets {
        TenantSecrets {
            bootstrap_token: "th_token".into(),
            webhook_signing_key: "whkey".into(),
        }
    }

    fn desired(spec: serde_json::Value) -> Desired {
        build(&resource(spec), &BuildConfig::default(), &secrets()).expect("builds")
    }

    fn pod(d: &Desired) -> &PodSpec {
        d.stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
    }

    fn container(d: &Desired) -> &Container {
        &pod(d).containers[0]
    }

    fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.iter().flatten().find(|e| e.name == name)
    }

    fn claim(d: &Desired) -> &PersistentVolumeClaimSpec {
        d.stateful_set
            .spec
            .as_ref()
            .expect("sts spec")
            .volume_claim_templates
            .as_ref()
            .expect("vct")[0]
            .spec
            .as_ref()
            .expect("claim spec")
    }

    #[test]
    fn minimal_spec_builds_every_child_named_after_the_tenant_and_owned() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        for meta in [
            &d.secret.metadata,
            &d.stateful_set.metadata,
            &d.service.metadata,
            &d.network_policy.metadata,
        ] {
            assert_eq!(meta.name.as_deref(), Some("th-acme"));
            assert_eq!(meta.namespace.as_deref(), Some("tenants"));
            assert!(is_owned_by(meta, "uid-1"));
            assert_eq!(
                meta.labels.as_ref().expect("labels")[MANAGED_BY_LABEL],
                MANAGER
            );
        }
        assert!(d.ingress.is_none(), "no host, no ingress");
        let sts = d.stateful_set.spec.as_ref().expect("spec");
        assert_eq!(sts.replicas, Some(1));
        let c = container(&d);
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/taskharbor/taskharbor:0.1.0")
        );
        assert_eq!(
            env_value(c, "TASKHARBOR_DATA_DIR").and_then(|e| e.value.as_deref()),
            Some("/data")
        );
        assert_eq!(
            env_value(c, "TASKHARBOR_LISTEN").and_then(|e| e.value.as_deref()),
            Some("0.0.0.0:8080")
        );
        let token = env_value(c, "TASKHARBOR_BOOTSTRAP_TOKEN")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("token from secret");
        assert_eq!(
            (token.name.as_str(), token.key.as_str()),
            ("th-acme", BOOTSTRAP_TOKEN_KEY)
        );
        assert_eq!(
            c.liveness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.as_deref()),
            Some("/healthz")
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.as_deref()),
            Some("/readyz")
        );
        let svc = d.service.spec.as_ref().expect("svc");
        let p = &svc.ports.as_ref().expect("ports")[0];
        assert_eq!((p.port, p.protocol.as_deref()), (80, Some("TCP")));
        assert_eq!(svc.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(
            claim(&d)
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .expect("req")["storage"]
                .0,
            "1Gi"
        );
        assert_eq!(claim(&d).storage_class_name, None);
        let data = d.secret.data.as_ref().expect("data");
        assert_eq!(data[BOOTSTRAP_TOKEN_KEY].0, b"th_token");
    }

    #[test]
    fn pod_is_hardened() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        let p = pod(&d);
        assert_eq!(p.automount_service_account_token, Some(false));
        let psc = p.security_context.as_ref().expect("pod sc");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(65532));
        let sc = container(&d).security_context.as_ref().expect("sc");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        let tmp = p
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tmp")
            .expect("tmp volume");
        assert!(tmp.empty_dir.is_some());
        let mounts = container(&d).volume_mounts.clone().unwrap_or_default();
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/tmp" && m.name == "tmp")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/data" && m.name == DATA_VOLUME)
        );
    }

    #[test]
    fn default_resources_are_50m_32mi_with_256mi_memory_limit() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        let r = container(&d).resources.as_ref().expect("resources");
        let req = r.requests.as_ref().expect("requests");
        let lim = r.limits.as_ref().expect("limits");
        assert_eq!(
            (req["cpu"].0.as_str(), req["memory"].0.as_str()),
            ("50m", "32Mi")
        );
        assert_eq!(lim["memory"].0, "256Mi");
        assert!(!lim.contains_key("cpu"));
    }

    #[test]
    fn custom_resources_are_passed_through() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0",
            "resources": {"requests": {"cpu": "200m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}));
        let r = container(&d).resources.as_ref().expect("resources");
        let req = r.requests.as_ref().expect("requests");
        let lim = r.limits.as_ref().expect("limits");
        assert_eq!(
            (req["cpu"].0.as_str(), req["memory"].0.as_str()),
            ("200m", "64Mi")
        );
        assert_eq!(
            (lim["cpu"].0.as_str(), lim["memory"].0.as_str()),
            ("1", "1Gi")
        );
    }

    #[test]
    fn host_adds_an_ingress_with_tls_and_an_https_url() {
        let th = resource(
            serde_json::json!({"tenant": "acme", "version": "0.1.0", "host": "acme.taskharbor.dev"}),
        );
        let cfg = BuildConfig {
            ingress_class: Some("nginx".into()),
            ..BuildConfig::default()
        };
        let d = build(&th, &cfg, &secrets()).expect("builds");
        let ing = d.ingress.expect("ingress");
        let spec = ing.spec.expect("spec");
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.expect("tls")[0];
        assert_eq!(
            tls.hosts.as_deref(),
            Some(&["acme.taskharbor.dev".to_owned()][..])
        );
        assert_eq!(tls.secret_name.as_deref(), Some("th-acme-tls"));
        let rule = &spec.rules.expect("rules")[0];
        assert_eq!(rule.host.as_deref(), Some("acme.taskharbor.dev"));
        let backend = rule.http.as_ref().expect("http").paths[0]
            .backend
            .service
            .as_ref()
            .expect("svc");
        assert_eq!(backend.name, "th-acme");
        assert_eq!(url(&th, "tenants"), "https://acme.taskharbor.dev");
        let no_host = resource(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        assert_eq!(
            url(&no_host, "tenants"),
            "http://th-acme.tenants.svc.cluster.local"
        );
    }

    #[test]
    fn suspend_scales_to_zero_and_keeps_the_claim_template() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0", "suspend": true}));
        let sts = d.stateful_set.spec.as_ref().expect("spec");
        assert_eq!(sts.replicas, Some(0));
        assert_eq!(sts.volume_claim_templates.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn storage_class_and_size_go_to_the_claim_template() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0",
            "storage": {"size": "5Gi", "storageClassName": "fast"}}));
        let c = claim(&d);
        assert_eq!(c.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .expect("req")["storage"]
                .0,
            "5Gi"
        );
        assert_eq!(
            c.access_modes.as_deref(),
            Some(&["ReadWriteOnce".to_owned()][..])
        );
    }

    #[test]
    fn retain_policy_does_not_change_the_children() {
        // Retention is applied by the finalizer, never by owner references on the PVC:
        // both policies build identical objects.
        let keep = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        let drop = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0",
            "storage": {"retainOnDelete": false}}));
        assert_eq!(keep.stateful_set, drop.stateful_set);
        let template = &keep
            .stateful_set
            .spec
            .as_ref()
            .expect("spec")
            .volume_claim_templates
            .as_ref()
            .expect("vct")[0];
        assert!(template.metadata.owner_references.is_none());
    }

    #[test]
    fn version_and_image_override_set_the_image_reference() {
        let d = desired(serde_json::json!({"tenant": "acme", "version": "0.2.0"}));
        assert_eq!(
            container(&d).image.as_deref(),
            Some("ghcr.io/taskharbor/taskharbor:0.2.0")
        );
        let d = desired(
            serde_json::json!({"tenant": "acme", "version": "0.2.0", "image": "registry.local/th"}),
        );
        assert_eq!(
            container(&d).image.as_deref(),
            Some("registry.local/th:0.2.0")
        );
        let th = resource(serde_json::json!({"tenant": "acme", "version": "0.3.0"}));
        let cfg = BuildConfig {
            default_image: "mirror.local/taskharbor".into(),
            ..BuildConfig::default()
        };
        let d = build(&th, &cfg, &secrets()).expect("builds");
        assert_eq!(
            container(&d).image.as_deref(),
            Some("mirror.local/taskharbor:0.3.0")
        );
    }

    #[test]
    fn sync_enabled_adds_optional_credentials_from_the_tenant_secret() {
        let off = desired(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        assert!(env_value(container(&off), "TASKHARBOR_GITHUB_TOKEN").is_none());
        let on = desired(
            serde_json::json!({"tenant": "acme", "version": "0.1.0", "sync": {"enabled": true}}),
        );
        let gh = env_value(container(&on), "TASKHARBOR_GITHUB_TOKEN")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("github token ref");
        assert_eq!(gh.optional, Some(true));
        assert_eq!(gh.key, GITHUB_TOKEN_KEY);
    }

    #[test]
    fn network_policy_admits_ingress_and_control_plane_and_blocks_private_egress() {
        let th = resource(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        let cfg = BuildConfig {
            ingress_namespace: "edge".into(),
            control_plane_namespace: "cp".into(),
            ..BuildConfig::default()
        };
        let np = build(&th, &cfg, &secrets())
            .expect("builds")
            .network_policy
            .spec
            .expect("spec");
        let from = np.ingress.expect("ingress")[0].from.clone().expect("from");
        let namespaces: Vec<String> = from
            .iter()
            .filter_map(|p| {
                p.namespace_selector
                    .as_ref()?
                    .match_labels
                    .as_ref()?
                    .get("kubernetes.io/metadata.name")
                    .cloned()
            })
            .collect();
        assert_eq!(namespaces, ["edge", "cp"]);
        let egress = np.egress.expect("egress");
        let dns_ports: Vec<_> = egress[0]
            .ports
            .iter()
            .flatten()
            .map(|p| p.port.clone())
            .collect();
        assert_eq!(
            dns_ports,
            [Some(IntOrString::Int(53)), Some(IntOrString::Int(53))]
        );
        let block = egress[1].to.as_ref().expect("to")[0]
            .ip_block
            .as_ref()
            .expect("ip block");
        assert_eq!(block.cidr, "0.0.0.0/0");
        let except = block.except.clone().expect("except");
        assert!(except.contains(&"10.0.0.0/8".to_owned()));
        assert!(except.contains(&"169.254.0.0/16".to_owned()));
    }

    #[test]
    fn build_is_deterministic() {
        let a = desired(
            serde_json::json!({"tenant": "acme", "version": "0.1.0", "host": "a.example.com"}),
        );
        let b = desired(
            serde_json::json!({"tenant": "acme", "version": "0.1.0", "host": "a.example.com"}),
        );
        assert_eq!(
            serde_json::to_value(&a.stateful_set).ok(),
            serde_json::to_value(&b.stateful_set).ok()
        );
        assert_eq!(a.network_policy, b.network_policy);
        assert_eq!(a.ingress, b.ingress);
    }

    #[test]
    fn resource_without_uid_is_a_build_error_not_a_panic() {
        let mut th = resource(serde_json::json!({"tenant": "acme", "version": "0.1.0"}));
        th.metadata.uid = None;
        assert!(build(&th, &BuildConfig::default(), &secrets()).is_err());
    }
}
