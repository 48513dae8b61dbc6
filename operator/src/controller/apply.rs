//! Sending desired objects to the API server, and nothing more often than
//! needed.
//!
//! Children are written with server-side apply (field manager
//! `taskharbor-operator`, forced, so hand edits of fields we manage are taken
//! back). To keep a steady-state resync free of writes, each applied object
//! carries a hash of what we applied, and the apply is skipped when the live
//! object (from the reflector cache) still has that hash and still contains
//! every field we want with the value we want. A hand edit breaks the second
//! test; a spec change (including one that removes a field) breaks the first.

use std::{collections::BTreeMap, fmt::Debug, sync::Arc};

use base64::Engine;
use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{PersistentVolumeClaim, Secret},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::reflector::{ObjectRef, Store},
};
use rand::RngCore;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Context, Error,
    build::{self, BOOTSTRAP_TOKEN_KEY, MANAGER, SECRET_KEY_KEY, TENANT_LABEL, TenantSecrets},
};

/// Annotation holding the hash of the last applied desired object.
pub const APPLIED_HASH_ANNOTATION: &str = "taskharbor.dev/applied-hash";

/// A fresh bootstrap admin token: `th_` + 43 URL-safe characters (256 random bits).
pub fn generate_token() -> String {
    format!("th_{}", random_urlsafe())
}

fn random_urlsafe() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The tenant's secret material: taken from the live Secret when present so
/// that reconcile never rotates it, generated only for keys that are missing.
pub async fn tenant_secrets(
    ctx: &Context,
    namespace: &str,
    tenant: &str,
) -> Result<TenantSecrets, Error> {
    let name = build::child_name(tenant);
    let cached = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&name).within(namespace));
    let live = match cached {
        Some(secret) => Some(secret),
        // The cache only holds Secrets carrying our label and may not have
        // caught up with our own create yet; ask the API server before
        // generating anything, or a token could be replaced.
        None => Api::<Secret>::namespaced(ctx.client.clone(), namespace)
            .get_opt(&name)
            .await
            .map_err(Error::Kube)?
            .map(Arc::new),
    };
    let existing = |key: &str| {
        live.as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    Ok(TenantSecrets {
        bootstrap_token: existing(BOOTSTRAP_TOKEN_KEY).unwrap_or_else(generate_token),
        secret_key: existing(SECRET_KEY_KEY).unwrap_or_else(random_urlsafe),
    })
}

/// Server-side applies `desired` unless the cached live object already matches.
/// Returns the live object after the call.
pub async fn apply<K>(
    ctx: &Context,
    store: &Store<K>,
    mut desired: K,
    kind: &'static str,
) -> Result<Arc<K>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let hash = hash_of(&desired)?;
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(APPLIED_HASH_ANNOTATION.into(), hash);
    let name = desired.name_any();
    let namespace = desired.namespace().unwrap_or_default();
    if let Some(live) = store.get(&ObjectRef::new(&name).within(&namespace)) {
        let want = serde_json::to_value(&desired).map_err(Error::Serialize)?;
        let have = serde_json::to_value(&*live).map_err(Error::Serialize)?;
        if is_subset(&want, &have) {
            return Ok(live);
        }
    }
    ctx.metrics.write(kind);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(Error::Kube)?;
    Ok(Arc::new(applied))
}

/// Deletes the named child if the cache shows one that this resource controls
/// (used for the Ingress when `spec.host` is removed).
pub async fn delete_owned<K>(
    ctx: &Context,
    store: &Store<K>,
    namespace: &str,
    name: &str,
    owner_uid: &str,
    kind: &'static str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let Some(live) = store.get(&ObjectRef::new(name).within(namespace)) else {
        return Ok(());
    };
    if !build::is_owned_by(live.meta(), owner_uid) {
        return Ok(());
    }
    ctx.metrics.write(kind);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(Error::Kube(err)),
    }
}

/// Deletes the tenant's data volume claim (finalizer, `retainOnDelete: false`).
/// StatefulSet claims are not owned by the resource, so garbage collection
/// never removes them; only a claim labelled for this tenant is touched.
pub async fn delete_data_claim(ctx: &Context, namespace: &str, tenant: &str) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let name = build::pvc_name(tenant);
    let Some(pvc) = api.get_opt(&name).await.map_err(Error::Kube)? else {
        return Ok(());
    };
    if pvc.labels().get(TENANT_LABEL).map(String::as_str) != Some(tenant) {
        return Ok(());
    }
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    ctx.metrics.write("persistentvolumeclaim");
    let params = DeleteParams {
        preconditions: pvc.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(Error::Kube(err)),
    }
}

fn hash_of<K: Serialize>(object: &K) -> Result<String, Error> {
    // Struct fields serialize in declaration order and maps are BTreeMaps,
    // so the bytes (and the hash) are stable across runs and replicas.
    let bytes = serde_json::to_vec(object).map_err(Error::Serialize)?;
    let digest = Sha256::digest(&bytes);
    Ok(hex::encode(&digest[..16]))
}

/// True when every field of `want` is present in `have` with the same value.
/// Lists must have the same length (extra items would be someone else's
/// entries or leftovers, and a re-apply is the safe answer).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| is_subset(wv, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(wv, hv)| is_subset(wv, hv))
        }
        (w, h) => w == h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_have_the_documented_shape_and_differ() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.starts_with("th_"));
        assert_eq!(a.len(), 3 + 43);
        assert!(
            a[3..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn subset_ignores_server_added_fields_but_sees_changed_values() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}});
        let have = json!({"spec": {"replicas": 1, "ports": [{"port": 80, "nodePort": 0}], "x": true}, "status": {}});
        assert!(is_subset(&want, &have));
        let drifted = json!({"spec": {"replicas": 0, "ports": [{"port": 80}]}});
        assert!(!is_subset(&want, &drifted));
        let extra_item = json!({"spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 81}]}});
        assert!(!is_subset(&want, &extra_item));
        assert!(!is_subset(&want, &json!({})));
    }

    #[test]
    fn hash_changes_when_a_field_is_removed() {
        let with = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        let without = json!({"limits": {"memory": "1Gi"}});
        assert_ne!(hash_of(&with).ok(), hash_of(&without).ok());
        assert_eq!(hash_of(&with).ok(), hash_of(&with.clone()).ok());
    }
}
