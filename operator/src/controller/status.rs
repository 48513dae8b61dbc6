//! `status` of a `TaskHarbor`: phase, url, observedGeneration and the
//! `Ready` / `Progressing` / `Degraded` conditions.
//!
//! [`compute`] is pure (it takes the current time as an argument);
//! [`patch_if_changed`] writes only when the result differs from what the
//! resource already shows, so a steady-state resync writes nothing.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde_json::json;

use super::{Context, Error};
use crate::crd::{Condition, Phase, TaskHarbor, TaskHarborStatus};

/// What reconcile found, as input to the status.
#[derive(Debug, Clone)]
pub enum Observed<'a> {
    /// Children applied; the StatefulSet as the API server last reported it.
    Applied(&'a StatefulSet),
    /// The spec cannot be reconciled (bad field, or the API server refused a child).
    Invalid {
        reason: &'static str,
        message: String,
    },
    /// The finalizer is running.
    Deleting,
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, now: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now.into(),
    }
}

/// The status the resource should show. `now` is only used for conditions
/// whose `status` changes; unchanged ones keep their transition time.
pub fn compute(
    th: &TaskHarbor,
    url: String,
    observed: &Observed<'_>,
    now: &str,
) -> TaskHarborStatus {
    let generation = th.meta().generation;
    let (phase, ready, progressing, degraded) = match observed {
        Observed::Invalid { reason, message } => (
            Phase::Degraded,
            condition("Ready", false, reason, message, now),
            condition("Progressing", false, reason, message, now),
            condition("Degraded", true, reason, message, now),
        ),
        Observed::Deleting => (
            Phase::Deleting,
            condition(
                "Ready",
                false,
                "Deleting",
                "the resource is being deleted",
                now,
            ),
            condition(
                "Progressing",
                true,
                "Deleting",
                "cleaning up before deletion",
                now,
            ),
            condition(
                "Degraded",
                false,
                "Deleting",
                "the resource is being deleted",
                now,
            ),
        ),
        Observed::Applied(sts) => {
            let (phase, reason, message) = workload_phase(th, sts);
            let ok = condition("Degraded", false, "AsExpected", "all children applied", now);
            match phase {
                Phase::Ready => (
                    phase,
                    condition("Ready", true, reason, &message, now),
                    condition("Progressing", false, reason, &message, now),
                    ok,
                ),
                Phase::Suspended => (
                    phase,
                    condition("Ready", false, reason, &message, now),
                    condition("Progressing", false, reason, &message, now),
                    ok,
                ),
                _ => (
                    phase,
                    condition("Ready", false, reason, &message, now),
                    condition("Progressing", true, reason, &message, now),
                    ok,
                ),
            }
        }
    };
    let previous = th
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    let conditions = [ready, progressing, degraded]
        .into_iter()
        .map(|mut c| {
            if let Some(old) = previous.iter().find(|o| o.type_ == c.type_)
                && old.status == c.status
            {
                c.last_transition_time = old.last_transition_time.clone();
            }
            c
        })
        .collect();
    TaskHarborStatus {
        phase: Some(phase),
        url: Some(url),
        observed_generation: generation,
        conditions,
    }
}

/// Phase, reason and message from the StatefulSet's own status.
fn workload_phase(th: &TaskHarbor, sts: &StatefulSet) -> (Phase, &'static str, String) {
    let status = sts.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation);
    let up_to_date = observed.is_some() && observed >= sts.metadata.generation;
    let replicas = status.map(|s| s.replicas).unwrap_or(0);
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let rolling = status
        .map(|s| s.current_revision.is_some() && s.current_revision != s.update_revision)
        .unwrap_or(false);
    if th.spec.suspend {
        return if up_to_date && replicas == 0 {
            (
                Phase::Suspended,
                "Suspended",
                "scaled to zero; the volume is kept".into(),
            )
        } else {
            (
                Phase::Suspended,
                "ScalingDown",
                "scaling to zero; the volume is kept".into(),
            )
        };
    }
    if !up_to_date {
        return (
            Phase::Pending,
            "WaitingForController",
            "the StatefulSet controller has not picked up the latest spec yet".into(),
        );
    }
    if ready >= 1 && updated >= 1 && !rolling {
        return (
            Phase::Ready,
            "PodReady",
            format!("version {} is serving", th.spec.version),
        );
    }
    if rolling || (ready >= 1 && updated == 0) {
        return (
            Phase::Provisioning,
            "RollingUpdate",
            format!("rolling the pod to version {}", th.spec.version),
        );
    }
    (
        Phase::Provisioning,
        "WaitingForPod",
        "waiting for the tenant pod to become ready".into(),
    )
}

/// Writes `status` when it differs from the resource's current status, and
/// publishes an Event when the phase changes. Returns whether it wrote.
pub async fn patch_if_changed(
    ctx: &Context,
    th: &TaskHarbor,
    status: TaskHarborStatus,
) -> Result<bool, Error> {
    // Full equality: `compute` carries over transition times, so an
    // unchanged situation yields an identical status and no write.
    if th.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let namespace = th.namespace().unwrap_or_default();
    let api: Api<TaskHarbor> = Api::namespaced(ctx.client.clone(), &namespace);
    ctx.metrics.write("status");
    api.patch_status(
        &th.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(Error::Kube)?;

    let old_phase = th.status.as_ref().and_then(|s| s.phase);
    if let Some(phase) = status.phase.filter(|p| Some(*p) != old_phase) {
        let main = status.conditions.iter().find(|c| {
            c.type_
                == if phase == Phase::Degraded {
                    "Degraded"
                } else {
                    "Ready"
                }
        });
        let event = Event {
            type_: if phase == Phase::Degraded {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: phase.as_str().into(),
            note: main.map(|c| c.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.metrics.write("event");
        // An event is best effort: failing to record one must not fail or
        // repeat the reconcile that already changed the status.
        if let Err(err) = ctx.recorder.publish(&event, &th.object_ref(&())).await {
            tracing::warn!(error = %err, "could not publish event");
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TaskHarborSpec;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;

    fn th(suspend: bool) -> TaskHarbor {
        let spec: TaskHarborSpec = serde_json::from_value(
            json!({"tenant": "acme", "version": "0.1.0", "suspend": suspend}),
        )
        .expect("spec");
        let mut th = TaskHarbor::new("acme", spec);
        th.metadata.generation = Some(2);
        th
    }

    fn sts(generation: i64, status: Option<StatefulSetStatus>) -> StatefulSet {
        let mut s = StatefulSet::default();
        s.metadata.generation = Some(generation);
        s.status = status;
        s
    }

    fn st(observed: i64, replicas: i32, ready: i32, updated: i32) -> Option<StatefulSetStatus> {
        Some(StatefulSetStatus {
            observed_generation: Some(observed),
            replicas,
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            current_revision: Some("r1".into()),
            update_revision: Some("r1".into()),
            ..StatefulSetStatus::default()
        })
    }

    fn cond<'a>(s: &'a TaskHarborStatus, t: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    #[test]
    fn new_statefulset_is_pending_then_provisioning_then_ready() {
        let t = th(false);
        let s = compute(&t, "u".into(), &Observed::Applied(&sts(1, None)), "t0");
        assert_eq!(s.phase, Some(Phase::Pending));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(cond(&s, "Progressing").status, "True");
        let s = compute(
            &t,
            "u".into(),
            &Observed::Applied(&sts(1, st(1, 1, 0, 1))),
            "t0",
        );
        assert_eq!(s.phase, Some(Phase::Provisioning));
        assert_eq!(cond(&s, "Ready").reason, "WaitingForPod");
        let s = compute(
            &t,
            "u".into(),
            &Observed::Applied(&sts(1, st(1, 1, 1, 1))),
            "t0",
        );
        assert_eq!(s.phase, Some(Phase::Ready));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Progressing").status, "False");
        assert_eq!(cond(&s, "Degraded").status, "False");
    }

    #[test]
    fn invalid_spec_is_degraded_with_the_message() {
        let s = compute(
            &th(false),
            "u".into(),
            &Observed::Invalid {
                reason: "InvalidSpec",
                message: "spec.version bad".into(),
            },
            "t0",
        );
        assert_eq!(s.phase, Some(Phase::Degraded));
        let d = cond(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str(), d.message.as_str()),
            ("True", "InvalidSpec", "spec.version bad")
        );
    }

    #[test]
    fn suspended_once_scaled_to_zero() {
        let s = compute(
            &th(true),
            "u".into(),
            &Observed::Applied(&sts(3, st(3, 0, 0, 0))),
            "t0",
        );
        assert_eq!(s.phase, Some(Phase::Suspended));
        assert_eq!(cond(&s, "Ready").reason, "Suspended");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time_so_status_is_stable() {
        let mut t = th(false);
        let ready = sts(1, st(1, 1, 1, 1));
        let first = compute(&t, "u".into(), &Observed::Applied(&ready), "t0");
        t.status = Some(first.clone());
        let second = compute(&t, "u".into(), &Observed::Applied(&ready), "t1");
        assert_eq!(first, second, "a resync must not produce a new status");
        let degraded = compute(
            &t,
            "u".into(),
            &Observed::Invalid {
                reason: "InvalidSpec",
                message: "m".into(),
            },
            "t2",
        );
        assert_eq!(cond(&degraded, "Degraded").last_transition_time, "t2");
        assert_eq!(cond(&degraded, "Progressing").last_transition_time, "t0");
    }
}
