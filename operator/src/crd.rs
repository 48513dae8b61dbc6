//! The `TaskHarbor` custom resource (`taskharbor.dev/v1alpha1`), exactly as
//! `shared/design/OPERATOR.md` describes it.
//!
//! This module is the contract shared by the operator (which reconciles the
//! resource) and the control plane (which creates it), so it holds only types,
//! their defaults and the validation the API server cannot do on Kubernetes
//! 1.20 (no CEL rules there). The CRD YAML in `charts/` is generated from these
//! types by `taskharbor-operator crd`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "taskharbor.dev";

/// Children of a tenant cannot exceed 63 characters in their names, and the
/// StatefulSet controller appends `-<10-char revision hash>` to the
/// StatefulSet name in a label, so `th-<tenant>` must stay well below 63.
pub const TENANT_MAX_LEN: usize = 40;

/// Kubernetes quantity grammar, as in the upstream OpenAPI `Quantity` type.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A hosted TaskHarbor instance for one tenant: one pod, one volume.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "taskharbor.dev",
    version = "v1alpha1",
    kind = "TaskHarbor",
    namespaced,
    shortname = "th",
    status = "TaskHarborStatus",
    doc = "A single-tenant TaskHarbor instance (one pod with its own volume)",
    printcolumn = r#"{"name":"Phase", "type":"string", "jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"URL", "type":"string", "jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Version", "type":"string", "jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TaskHarborSpec {
    /// Immutable tenant id; a DNS label. Names every child object (`th-<tenant>`).
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub tenant: String,
    /// TaskHarbor version: the image tag. Changing it rolls the pod.
    #[schemars(length(min = 1, max = 128))]
    pub version: String,
    /// Image repository override (without tag); the operator's default otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Public host name; when set, an Ingress with TLS serves `https://<host>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The tenant's data volume.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Compute requests and limits of the tenant container.
    #[serde(default)]
    pub resources: ResourcesSpec,
    /// GitHub/GitLab sync; credentials come from the tenant Secret.
    #[serde(default)]
    pub sync: SyncSpec,
    /// Scale to zero and keep the volume.
    #[serde(default)]
    pub suspend: bool,
}

/// The volume holding the tenant's SQLite database.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size (a Kubernetes quantity such as `1Gi`).
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub size: String,
    /// Storage class of the claim; the cluster default when null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep the PersistentVolumeClaim when the resource is deleted.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            retain_on_delete: true,
        }
    }
}

/// Requests and limits of the tenant container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    #[serde(default)]
    pub requests: ResourceRequests,
    #[serde(default)]
    pub limits: ResourceLimits,
}

/// Resource requests (defaults: cpu 50m, memory 32Mi).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequests {
    #[serde(default = "default_cpu_request")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub cpu: String,
    #[serde(default = "default_memory_request")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub memory: String,
}

impl Default for ResourceRequests {
    fn default() -> Self {
        Self {
            cpu: default_cpu_request(),
            memory: default_memory_request(),
        }
    }
}

/// Resource limits (default: memory 256Mi, no CPU limit so the pod is not throttled).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub cpu: Option<String>,
    #[serde(default = "default_memory_limit")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub memory: String,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            cpu: None,
            memory: default_memory_limit(),
        }
    }
}

/// GitHub/GitLab mirroring.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncSpec {
    #[serde(default)]
    pub enabled: bool,
}

fn default_storage_size() -> String {
    "1Gi".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_cpu_request() -> String {
    "50m".to_owned()
}
fn default_memory_request() -> String {
    "32Mi".to_owned()
}
fn default_memory_limit() -> String {
    "256Mi".to_owned()
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskHarborStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "phase_schema")]
    pub phase: Option<Phase>,
    /// Where the tenant is served: `https://<host>` or the in-cluster Service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// schemars lists `null` among the enum values of an `Option<enum>`; the
/// Kubernetes 1.20 API server cannot decode such a CRD (it silently drops the
/// version's subresources and printer columns), so spell the schema out.
fn phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Lifecycle phase shown in `kubectl get th`.",
        "type": "string",
        "enum": ["Pending", "Provisioning", "Ready", "Degraded", "Suspended", "Deleting"],
        "nullable": true
    })
}

/// Lifecycle phase shown in `kubectl get th`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Pending,
    Provisioning,
    Ready,
    Degraded,
    Suspended,
    Deleting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Suspended => "Suspended",
            Phase::Deleting => "Deleting",
        }
    }
}

/// A status condition (`Ready`, `Progressing` or `Degraded`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable CamelCase reason.
    pub reason: String,
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    pub last_transition_time: String,
}

/// Why a spec cannot be reconciled; shown in the `Degraded` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    #[error("spec.tenant {0:?} must be a DNS label of at most {TENANT_MAX_LEN} characters")]
    Tenant(String),
    #[error("spec.version {0:?} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")]
    Version(String),
    #[error("spec.image {0:?} must be an image repository without tag or digest")]
    Image(String),
    #[error("spec.host {0:?} is not a valid DNS host name")]
    Host(String),
    #[error("{field} {value:?} is not a Kubernetes quantity")]
    Quantity { field: &'static str, value: String },
    #[error("spec.tenant is immutable: this resource already runs tenant {previous:?}")]
    TenantChanged { previous: String },
}

impl TaskHarborSpec {
    /// Checks what the CRD schema cannot express on Kubernetes 1.20, and
    /// re-checks what it can, so a resource created before a schema change or
    /// with validation disabled still never reaches the build step.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        if !is_dns_label(&self.tenant) || self.tenant.len() > TENANT_MAX_LEN {
            return Err(InvalidSpec::Tenant(self.tenant.clone()));
        }
        if !is_image_tag(&self.version) {
            return Err(InvalidSpec::Version(self.version.clone()));
        }
        if let Some(image) = &self.image
            && !is_image_repository(image)
        {
            return Err(InvalidSpec::Image(image.clone()));
        }
        if let Some(host) = &self.host
            && !is_dns_name(host)
        {
            return Err(InvalidSpec::Host(host.clone()));
        }
        let quantities = [
            ("spec.storage.size", Some(&self.storage.size)),
            (
                "spec.resources.requests.cpu",
                Some(&self.resources.requests.cpu),
            ),
            (
                "spec.resources.requests.memory",
                Some(&self.resources.requests.memory),
            ),
            (
                "spec.resources.limits.cpu",
                self.resources.limits.cpu.as_ref(),
            ),
            (
                "spec.resources.limits.memory",
                Some(&self.resources.limits.memory),
            ),
        ];
        for (field, value) in quantities {
            if let Some(value) = value
                && !is_quantity(value)
            {
                return Err(InvalidSpec::Quantity {
                    field,
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }
}

fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_image_tag(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_image_repository(s: &str) -> bool {
    // A registry port (`host:5000/repo`) is allowed; a tag after the last `/` is not.
    let last = s.rsplit('/').next().unwrap_or(s);
    !s.is_empty()
        && !s.contains('@')
        && !last.contains(':')
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
        })
        && !s.starts_with('/')
        && !s.ends_with('/')
}

/// Decimal quantities with an optional binary/decimal SI suffix or exponent,
/// the same grammar as [`QUANTITY_PATTERN`].
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return false;
    }
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        exp => match exp.strip_prefix(['e', 'E']) {
            Some(rest) => {
                let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TaskHarborSpec {
        serde_json::from_value(serde_json::json!({"tenant": "acme", "version": "0.1.0"}))
            .expect("minimal spec parses")
    }

    #[test]
    fn minimal_spec_gets_documented_defaults() {
        let s = spec();
        assert_eq!(s.storage.size, "1Gi");
        assert!(s.storage.retain_on_delete);
        assert_eq!(s.resources.requests.cpu, "50m");
        assert_eq!(s.resources.requests.memory, "32Mi");
        assert_eq!(s.resources.limits.memory, "256Mi");
        assert!(!s.suspend);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn validation_rejects_bad_fields_with_the_field_name() {
        let mut s = spec();
        s.version = "1.0 beta".into();
        assert!(
            s.validate()
                .expect_err("invalid")
                .to_string()
                .contains("spec.version")
        );
        let mut s = spec();
        s.tenant = "Acme".into();
        assert!(matches!(s.validate(), Err(InvalidSpec::Tenant(_))));
        let mut s = spec();
        s.host = Some("acme..example.com".into());
        assert!(matches!(s.validate(), Err(InvalidSpec::Host(_))));
        let mut s = spec();
        s.image = Some("ghcr.io/x/y:1.0".into());
        assert!(matches!(s.validate(), Err(InvalidSpec::Image(_))));
        let mut s = spec();
        s.image = Some("registry.local:5000/x/y".into());
        assert!(s.validate().is_ok());
        let mut s = spec();
        s.storage.size = "ten gigs".into();
        assert!(
            s.validate()
                .expect_err("invalid")
                .to_string()
                .contains("spec.storage.size")
        );
    }

    #[test]
    fn quantity_grammar_matches_kubernetes() {
        for ok in [
            "1Gi", "50m", "0.5", ".5", "1e3", "256Mi", "100", "1.5G", "+1",
        ] {
            assert!(is_quantity(ok), "{ok} should be a quantity");
        }
        for bad in ["", "Gi", "1GB", "1.2.3", ".", "1e", "1 Gi", "-"] {
            assert!(!is_quantity(bad), "{bad} should not be a quantity");
        }
    }
}
